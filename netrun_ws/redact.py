"""Log hygiene: keep credentials out of log lines, and client mistakes out of tracebacks.

uvicorn logs request paths (query strings included) and, at DEBUG, headers and frames; it also
logs a client's invalid UTF-8 with a full traceback, as if the server had failed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

DEFAULT_PARAMS = ("token", "access_token", "jwt", "api_key", "apikey", "password", "secret")


class RedactQueryFilter(logging.Filter):
    """Replaces the value of credential-looking query parameters in a log record with ``***``."""

    def __init__(self, params: Iterable[str] = DEFAULT_PARAMS) -> None:
        super().__init__()
        names = "|".join(re.escape(p) for p in sorted(set(params)))
        self._pattern = re.compile(rf"([?&](?:{names})=)[^&\s\"']*", re.IGNORECASE)

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
    the bearer subprotocol prefix, and of a JSON ``"token"`` field (auth and refresh messages).
    """

    def __init__(self, subprotocol_prefix: str | None = "bearer.") -> None:
        super().__init__()
        patterns = [
            r"((?:proxy-)?authorization:\s*[A-Za-z][\w-]*\s+)[^\s,]+",
            r"(\bbearer\s+)[^\s,]+",
            r"(\"(?:token|access_token|refresh_token)\"\s*:\s*\")[^\"]*",
        ]
        if subprotocol_prefix:
            patterns.append(rf"((?<![\w.-]){re.escape(subprotocol_prefix)})[^\s,]+")
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


LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "netrun_ws")


def install(
    params: Iterable[str] = DEFAULT_PARAMS, subprotocol_prefix: str | None = "bearer."
) -> None:
    """Attach the filters to the loggers that print request paths, headers and frames.

    Idempotent: filters a previous call attached are replaced, not stacked.
    """
    ours = (RedactQueryFilter, CredentialLogFilter, ClientErrorFilter)
    filters = (RedactQueryFilter(params), CredentialLogFilter(subprotocol_prefix))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, ours)]:
            logger.removeFilter(old)
        for log_filter in filters:
            logger.addFilter(log_filter)
    logging.getLogger("uvicorn.error").addFilter(ClientErrorFilter())
