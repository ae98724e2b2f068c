"""netrun-websocket 1.0's ``netrun.websocket.session_manager`` (``netrun_ws.session``)."""

from netrun_ws.session import (
    SessionState,
    SessionStoreError,
    WebSocketConnection,
    WebSocketSessionManager,
)

__all__ = ["SessionState", "SessionStoreError", "WebSocketConnection", "WebSocketSessionManager"]
