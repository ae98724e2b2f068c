"""netrun-websocket 1.0's ``netrun.websocket.auth``: JWT authentication (``netrun_ws.auth``)."""

from netrun_ws.auth import JWTAuthService, TokenValidationError
from netrun_ws.websocket_auth import TokenAuthMiddleware, authenticate_websocket

__all__ = [
    "JWTAuthService",
    "TokenAuthMiddleware",
    "TokenValidationError",
    "authenticate_websocket",
]
