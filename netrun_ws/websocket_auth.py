"""Authenticating a Starlette/FastAPI WebSocket with a JWT: netrun-websocket 1.0's helpers.

``authenticate_websocket(websocket, token, auth_service)`` and ``TokenAuthMiddleware`` return
the verified claims, or raise Starlette's ``WebSocketException`` with 1008 (policy violation),
which Starlette and FastAPI turn into a close (an HTTP 403 before the handshake is accepted).
The close reason says which case it was and never contains the token.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import WebSocketException
from starlette.websockets import WebSocket

from netrun_ws.auth import JWTAuthService, TokenValidationError
from netrun_ws.codes import CloseCode

__all__ = ["TokenAuthMiddleware", "authenticate_websocket"]

MISSING_TOKEN = "Missing authentication token"
EXPIRED_TOKEN = "Token expired"
INVALID_TOKEN = "Invalid authentication token"


async def authenticate_websocket(
    websocket: WebSocket, token: str | None, auth_service: JWTAuthService
) -> dict[str, Any]:
    """The claims of ``token``, or ``WebSocketException(1008)`` if it is missing, invalid or
    expired. ``websocket`` is not touched: raising lets the framework close it."""
    if not token:
        raise WebSocketException(code=CloseCode.POLICY_VIOLATION, reason=MISSING_TOKEN)
    try:
        return auth_service.validate_token_or_raise(token)
    except TokenValidationError as rejected:
        reason = EXPIRED_TOKEN if rejected.reason == "expired" else INVALID_TOKEN
        raise WebSocketException(code=CloseCode.POLICY_VIOLATION, reason=reason) from None


class TokenAuthMiddleware:
    """``await TokenAuthMiddleware(auth_service).authenticate(websocket, token)``: the same."""

    def __init__(self, auth_service: JWTAuthService) -> None:
        self.auth_service = auth_service

    async def authenticate(self, websocket: WebSocket, token: str | None) -> dict[str, Any]:
        """The claims of ``token``, or ``WebSocketException(1008)`` (see the module)."""
        return await authenticate_websocket(websocket, token, self.auth_service)
