"""Close codes and error-reply codes: the one documented taxonomy (docs/protocol.md).

Every refusal the server makes uses a name from here, so docs, tests and code agree.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CloseCode", "ErrorCode"]


class CloseCode(IntEnum):
    """WebSocket close codes sent by netrun-ws, and what a client should do on each."""

    NORMAL = 1000  # done; do not reconnect
    GOING_AWAY = 1001  # server shutting down; reconnect with backoff
    POLICY_VIOLATION = 1008  # auth failed/expired, bad Origin; do not retry without a new token
    MESSAGE_TOO_BIG = 1009  # do not resend that message
    INTERNAL_ERROR = 1011  # server bug; reconnect with backoff
    SERVICE_RESTART = 1012  # drain; reconnect with backoff and resume the session
    TRY_AGAIN_LATER = 1013  # overload or connection limit; back off
    # 4000-4099: application-level, terminal (client should stop).
    TOO_MANY_INVALID_MESSAGES = 4000  # too many consecutive invalid messages
    # 4100-4199: application-level, reconnect with backoff.
    HEARTBEAT_TIMEOUT = 4100  # no pong within the heartbeat timeout
    SLOW_CONSUMER = 4101  # outbound queue overflowed
    RATE_LIMITED = 4102  # messages-per-second limit persistently exceeded


class ErrorCode:
    """Values of the ``code`` field of ``{"type": "error"}`` replies (the connection stays open)."""

    INVALID_JSON = "invalid_json"  # frame is not valid JSON
    INVALID_MESSAGE = "invalid_message"  # JSON, but not an object with a string "type"
    UNKNOWN_TYPE = "unknown_type"  # "type" names no registered message type
    VALIDATION_FAILED = "validation_failed"  # the message type's model rejected the fields
    BINARY_NOT_SUPPORTED = "binary_not_supported"  # binary frame on the JSON text protocol
    RATE_LIMITED = "rate_limited"  # over limits.messages_per_second; persisting closes with 4102
    INVALID_TOKEN = "invalid_token"  # a refresh token was refused (the connection stays open)
    HANDLER_ERROR = "handler_error"  # a plugin failed while handling this message
    FORBIDDEN = "forbidden"  # the action was refused (e.g. room join not authorised)
    NOT_FOUND = "not_found"  # the addressed room/user does not exist
