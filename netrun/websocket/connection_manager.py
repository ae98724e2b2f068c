"""netrun-websocket 1.0's ``netrun.websocket.connection_manager``.

The classes live in ``netrun_ws.connection_manager`` and ``netrun_ws.connection_metadata``.
"""

from netrun_ws.connection_manager import (
    ConnectionLimitError,
    InvalidMessageError,
    SessionInUseError,
    WebSocketConnectionManager,
)
from netrun_ws.connection_metadata import ConnectionMetadata

__all__ = [
    "ConnectionLimitError",
    "ConnectionMetadata",
    "InvalidMessageError",
    "SessionInUseError",
    "WebSocketConnectionManager",
]
