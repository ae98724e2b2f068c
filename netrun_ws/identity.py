"""What the handshake and authentication hooks return: who connects, or why they may not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["AuthenticationError", "Identity", "Rejection"]


@dataclass(frozen=True, slots=True)
class Identity:
    """The authenticated client; ``claims`` holds what the auth plugin verified (JWT claims)."""

    user_id: str
    username: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    # Unix time after which the credentials are no longer valid (None: never expires).
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Returned by a ``handshake`` implementation to refuse the upgrade with HTTP 403."""

    reason: str


class AuthenticationError(Exception):
    """Raised by an ``authenticate`` implementation to refuse a client.

    ``reason`` is public: it is sent to the client as the close reason (keep it short and never
    include the credential itself). By default the host accepts the socket and closes it with
    1008 and ``reason`` (browsers can read a close reason, not an HTTP status). ``status`` (401
    or 403) refuses the upgrade itself with that HTTP status and ``{"error": reason}`` instead,
    where the socket has not been accepted yet (not for first-message auth, nor ``verify_token``).
    """

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        if status is not None and status not in (401, 403):
            raise ValueError(f"status must be 401 or 403, got {status!r}")
        super().__init__(reason)
        self.reason = reason
        self.status = status
