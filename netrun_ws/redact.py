"""Log hygiene: keep credentials out of log lines, and client mistakes out of tracebacks.

uvicorn logs request paths (query strings included) and, at DEBUG, headers and frames; it also
logs a client's invalid UTF-8 with a full traceback, as if the server had failed.

``create_app`` installs the filters with the defaults below plus every plugin's answer to the
``register_redactions`` hook: a plugin that reads a credential from a request says where, as a
:class:`Redactions`, and its value is masked too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DEFAULTS",
    "DEFAULT_PARAMS",
    "LOGGERS",
    "ClientErrorFilter",
    "CredentialLogFilter",
    "RedactQueryFilter",
    "Redactions",
    "install",
    "log_filters",
]

#: Query parameters whose values are secrets: credentials, and ``session_id`` (whoever holds a
#: session id could otherwise try to resume that session as its owner).
DEFAULT_PARAMS = (
    "token",
    "access_token",
    "jwt",
    "api_key",
    "apikey",
    "password",
    "secret",
    "session_id",
)


@dataclass(frozen=True, slots=True)
class Redactions:
    """Where a plugin reads credentials from a request, so their values are masked in log lines.

    ``query_params``: names of query parameters (``?ticket=...``); ``subprotocol_prefixes``:
    prefixes of a ``Sec-WebSocket-Protocol`` entry that carries a credential (``bearer.<token>``).
    """

    query_params: tuple[str, ...] = ()
    subprotocol_prefixes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field, names in (
            ("query_params", self.query_params),
            ("subprotocol_prefixes", self.subprotocol_prefixes),
        ):
            # A bare string would be read letter by letter, an empty name would mask everything.
            if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
                raise ValueError(f"Redactions.{field} must be a tuple of non-empty strings")
            object.__setattr__(self, field, tuple(names))

    def __or__(self, other: Redactions) -> Redactions:
        """Both sets of names (this one's first, each name once)."""
        return Redactions(
            tuple(dict.fromkeys((*self.query_params, *other.query_params))),
            tuple(dict.fromkeys((*self.subprotocol_prefixes, *other.subprotocol_prefixes))),
        )


#: Masked whatever the plugins say: credential-looking query parameters and ``bearer.<token>``.
DEFAULTS = Redactions(DEFAULT_PARAMS, ("bearer.",))


class RedactQueryFilter(logging.Filter):
    """Replaces the value of credential-looking query parameters in a log record with ``***``."""

    def __init__(self, params: Iterable[str] = DEFAULT_PARAMS) -> None:
        super().__init__()
        names = "|".join(re.escape(p) for p in sorted(set(params)))
        # After "?" or "&" in a URL, or first in an ASGI scope's query_string (b'name=...'),
        # which uvicorn logs at TRACE.
        self._pattern = re.compile(rf"((?:[?&]|\bb['\"])(?:{names})=)[^&\s\"']*", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._pattern.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class CredentialLogFilter(logging.Filter):
    """Replaces credentials in log lines with ``***``.

    At DEBUG, uvicorn's WebSocket implementation logs every request header and the start of
    every frame on ``uvicorn.error`` (``< authorization: Bearer ...``,
    ``< sec-websocket-protocol: netrun-ws, bearer....``, ``< TEXT '{"type": "auth", "token":
    ...``). This hides the value after ``authorization:`` (any scheme), after ``Bearer ``, after
    each of ``subprotocol_prefixes`` (``bearer.``), of a JSON ``"token"`` field (auth and
    refresh messages) and of a JSON ``"session_id"`` field (welcome and drain messages).
    """

    def __init__(self, subprotocol_prefixes: Iterable[str] = DEFAULTS.subprotocol_prefixes) -> None:
        super().__init__()
        patterns = [
            r"((?:proxy-)?authorization:\s*[A-Za-z][\w-]*\s+)[^\s,]+",
            r"(\bbearer\s+)[^\s,]+",
            r"(\"(?:token|access_token|refresh_token|session_id)\"\s*:\s*\")[^\"]*",
        ]
        if isinstance(subprotocol_prefixes, str):  # one prefix, not its letters
            subprotocol_prefixes = (subprotocol_prefixes,)
        prefixes = "|".join(re.escape(prefix) for prefix in subprotocol_prefixes if prefix)
        if prefixes:
            patterns.append(rf"((?<![\w.-])(?:{prefixes}))[^\s,]+")
        self._patterns = [re.compile(pattern, re.IGNORECASE) for pattern in patterns]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for pattern in self._patterns:
            redacted = pattern.sub(r"\1***", redacted)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class ClientErrorFilter(logging.Filter):
    """Turns uvicorn's traceback for a client's invalid UTF-8 into one INFO line (the client is
    closed with 1007; nothing failed on the server)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Invalid UTF-8 sequence"):
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "netrun_ws")


def log_filters(*redactions: Redactions) -> list[logging.Filter]:
    """The filters that mask the :data:`DEFAULTS` and every name of ``redactions``."""
    every = DEFAULTS
    for more in redactions:
        every |= more
    return [RedactQueryFilter(every.query_params), CredentialLogFilter(every.subprotocol_prefixes)]


def install(*redactions: Redactions) -> None:
    """Attach the filters to the loggers that print request paths, headers and frames, masking
    the :data:`DEFAULTS` and every name of ``redactions``.

    Idempotent: filters a previous call attached are replaced, not stacked.
    """
    ours = (RedactQueryFilter, CredentialLogFilter, ClientErrorFilter)
    filters = log_filters(*redactions)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, ours)]:
            logger.removeFilter(old)
        for log_filter in filters:
            logger.addFilter(log_filter)
    logging.getLogger("uvicorn.error").addFilter(ClientErrorFilter())
