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
    include the credential itself).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
