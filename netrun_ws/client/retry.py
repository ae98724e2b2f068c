"""When the client reconnects and how long it waits: the close-code table and the backoff schedule.

docs/clients.md shows :data:`CLOSE_CODE_RULES` and :data:`HTTP_STATUS_RULES` as tables;
tests/client/test_retry_table_doc.py keeps the two in agreement.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from netrun_ws.reconnection import ReconnectionConfig


class Retry(enum.Enum):
    """What the client does after a connection ended or was refused."""

    #: Reconnect soon: the first attempt waits a random time in ``[0, initial_delay / 2]`` (a
    #: draining server's clients spread out without a full backoff); later ones back off.
    PROMPT = "prompt"
    #: Reconnect following the backoff schedule of the server's (or the client's) policy.
    BACKOFF = "backoff"
    #: Credentials were refused: reconnect only with a new token from the refresh callback, once;
    #: without a callback, or when the new token is refused too, stop.
    REAUTH = "reauth"
    #: Stop: retrying cannot help (a bug, a permanent policy close, an ordinary end).
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class RetryRule:
    retry: Retry
    why: str


#: Close codes the server (or the network) can end a connection with: docs/protocol.md.
CLOSE_CODE_RULES: Mapping[int, RetryRule] = {
    1000: RetryRule(
        Retry.NEVER, "normal close, or the session was taken over by a newer connection"
    ),
    1001: RetryRule(Retry.PROMPT, "the server is going away (shutting down)"),
    1002: RetryRule(Retry.NEVER, "protocol error: a client bug"),
    1003: RetryRule(Retry.NEVER, "unsupported data: a client bug"),
    1005: RetryRule(Retry.BACKOFF, "closed without a status code"),
    1006: RetryRule(
        Retry.BACKOFF, "connection lost without a close frame (network, server killed)"
    ),
    1007: RetryRule(Retry.NEVER, "invalid payload (not UTF-8): a client bug"),
    1008: RetryRule(
        Retry.REAUTH, "policy violation: authentication failed or the user was revoked"
    ),
    1009: RetryRule(Retry.NEVER, "a message was too big: resending it would fail again"),
    1010: RetryRule(Retry.NEVER, "a required extension is missing"),
    1011: RetryRule(Retry.BACKOFF, "internal error on the server"),
    1012: RetryRule(Retry.PROMPT, "the server is draining (restart): resume elsewhere"),
    1013: RetryRule(Retry.BACKOFF, "try again later (a connection limit)"),
    1014: RetryRule(Retry.BACKOFF, "bad gateway"),
    1015: RetryRule(Retry.NEVER, "TLS handshake failed"),
    4000: RetryRule(Retry.NEVER, "too many invalid messages in a row: a client bug"),
    4100: RetryRule(Retry.BACKOFF, "heartbeat timeout"),
    4101: RetryRule(Retry.BACKOFF, "slow consumer"),
    4102: RetryRule(Retry.BACKOFF, "rate limited"),
}

#: Codes not listed above, by range (first match).
CLOSE_CODE_RANGES: tuple[tuple[int, int, RetryRule], ...] = (
    (4000, 4099, RetryRule(Retry.NEVER, "terminal application code")),
    (4100, 4199, RetryRule(Retry.BACKOFF, "application code: reconnect with backoff")),
)

#: Any other close code.
OTHER_CLOSE_CODE = RetryRule(Retry.BACKOFF, "any other code")

#: HTTP statuses of a refused handshake (before any WebSocket exists): docs/protocol.md.
HTTP_STATUS_RULES: Mapping[int, RetryRule] = {
    400: RetryRule(Retry.NEVER, "bad request (while resuming: the session is dropped, see below)"),
    401: RetryRule(Retry.REAUTH, "unauthorized"),
    403: RetryRule(
        Retry.REAUTH, "forbidden: refused Origin, handshake hook, another user's session"
    ),
    404: RetryRule(Retry.NEVER, "no WebSocket endpoint at this path"),
    414: RetryRule(Retry.NEVER, "URL too long (while resuming: the session is dropped, see below)"),
    429: RetryRule(Retry.BACKOFF, "too many connections for this user or address"),
    503: RetryRule(Retry.BACKOFF, "server full, or its session store is unavailable"),
}

#: Any other status: 5xx back off, everything else stops.
OTHER_SERVER_ERROR = RetryRule(Retry.BACKOFF, "any other 5xx")
OTHER_STATUS = RetryRule(Retry.NEVER, "any other status")

#: The connection could not be opened at all (refused, unreachable, timed out, broken handshake).
NETWORK_ERROR = RetryRule(Retry.BACKOFF, "no connection: refused, unreachable, timed out")


def rule_for_close(code: int | None) -> RetryRule:
    """The rule for a connection that ended with close ``code`` (None: no close frame, 1006)."""
    if code is None:
        code = 1006
    rule = CLOSE_CODE_RULES.get(code)
    if rule is not None:
        return rule
    for low, high, ranged in CLOSE_CODE_RANGES:
        if low <= code <= high:
            return ranged
    return OTHER_CLOSE_CODE


def rule_for_status(status: int) -> RetryRule:
    """The rule for a handshake refused with HTTP ``status``."""
    rule = HTTP_STATUS_RULES.get(status)
    if rule is not None:
        return rule
    return OTHER_SERVER_ERROR if 500 <= status <= 599 else OTHER_STATUS


def policy_from_welcome(
    welcome: Mapping[str, Any], fallback: ReconnectionConfig
) -> ReconnectionConfig:
    """The reconnect policy a welcome message names, or ``fallback`` when it names none or a
    malformed one (a server's mistake must not leave the client retrying in a tight loop)."""
    raw = welcome.get("reconnect")
    if not isinstance(raw, Mapping):
        return fallback
    fields: dict[str, Any] = {}
    for name in ("initial_delay", "max_delay", "backoff_multiplier"):
        value = raw.get(name, getattr(fallback, name))
        if isinstance(value, bool) or not isinstance(value, int | float):
            return fallback
        fields[name] = float(value)
    attempts = raw.get("max_attempts", fallback.max_attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        return fallback
    fields["max_attempts"] = attempts
    jitter = raw.get("jitter", "equal" if fallback.jitter else "none")
    if jitter not in ("equal", "none"):
        return fallback
    fields["jitter"] = jitter == "equal"
    try:
        return ReconnectionConfig(**fields)
    except ValueError:
        return fallback


def retry_delay(
    policy: ReconnectionConfig, attempt: int, retry: Retry, random: Callable[[], float]
) -> float:
    """Seconds to wait before reconnect ``attempt`` (1-based) under ``policy``.

    BACKOFF: ``initial_delay * backoff_multiplier ** (attempt - 1)`` capped at ``max_delay``,
    drawn from ``[delay / 2, delay]`` with ``jitter: equal``. PROMPT: the first attempt waits
    ``random() * initial_delay / 2``, later ones back off as above. ``random`` returns [0, 1).
    """
    if retry is Retry.PROMPT and attempt <= 1:
        return random() * policy.initial_delay / 2
    delay = policy.base_delay(attempt)
    if policy.jitter:
        delay *= 0.5 + 0.5 * random()
    return delay if math.isfinite(delay) else policy.max_delay


def attempts_left(policy: ReconnectionConfig, attempt: int) -> bool:
    """Whether reconnect ``attempt`` (1-based) is allowed (``max_attempts`` 0 = no limit)."""
    return policy.max_attempts == 0 or attempt <= policy.max_attempts
