"""netrun-ws: a config-driven WebSocket server framework, and the netrun-websocket library API.

``from netrun_ws import WebSocketConnectionManager`` (or the old
``from netrun.websocket import ...``) for the library; ``create_app(config)`` or ``netrun-ws run``
for the framework; ``hookimpl`` to write plugins.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

from netrun_ws.app import create_app
from netrun_ws.auth import JWTAuthService, TokenValidationError
from netrun_ws.codes import CloseCode, ErrorCode
from netrun_ws.connection import Connection
from netrun_ws.connection_manager import InvalidMessageError, WebSocketConnectionManager
from netrun_ws.connection_metadata import ConnectionMetadata
from netrun_ws.heartbeat import HeartbeatConfig, HeartbeatMonitor

# hookimpl first: plugin modules imported later do `from netrun_ws import hookimpl`.
from netrun_ws.hookspecs import hookimpl, hookspec
from netrun_ws.host import Host
from netrun_ws.identity import AuthenticationError, Identity, Rejection
from netrun_ws.metric_records import ConnectionMetrics, LatencyMetrics
from netrun_ws.metrics import MetricsCollector
from netrun_ws.plugins.hooks import DROP
from netrun_ws.plugins.routing import handles
from netrun_ws.protocol import (
    ConnectionInfo,
    ConnectionState,
    ErrorMessage,
    MessageRegistry,
    MessageType,
    NotificationMessage,
    PingMessage,
    PongMessage,
    PresenceUpdateMessage,
    ProtocolError,
    TypingIndicatorMessage,
    UserMessage,
    WebSocketMessage,
    parse_message,
)
from netrun_ws.reconnection import ReconnectionConfig, ReconnectionManager
from netrun_ws.reconnection_tracker import ReconnectionTracker
from netrun_ws.session import (
    SessionState,
    SessionStoreError,
    WebSocketConnection,
    WebSocketSessionManager,
)
from netrun_ws.websocket_auth import TokenAuthMiddleware, authenticate_websocket

try:
    __version__ = importlib.metadata.version("netrun-ws")
except importlib.metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

#: True when redis-py is installed (the ``redis`` extra), as in netrun-websocket.
REDIS_SUPPORT = importlib.util.find_spec("redis") is not None

__all__ = [
    "DROP",
    "REDIS_SUPPORT",
    "AuthenticationError",
    "CloseCode",
    "Connection",
    "ConnectionInfo",
    "ConnectionMetadata",
    "ConnectionMetrics",
    "ConnectionState",
    "ErrorCode",
    "ErrorMessage",
    "HeartbeatConfig",
    "HeartbeatMonitor",
    "Host",
    "Identity",
    "InvalidMessageError",
    "JWTAuthService",
    "LatencyMetrics",
    "MessageRegistry",
    "MessageType",
    "MetricsCollector",
    "NotificationMessage",
    "PingMessage",
    "PongMessage",
    "PresenceUpdateMessage",
    "ProtocolError",
    "ReconnectionConfig",
    "ReconnectionManager",
    "ReconnectionTracker",
    "Rejection",
    "SessionState",
    "SessionStoreError",
    "TokenAuthMiddleware",
    "TokenValidationError",
    "TypingIndicatorMessage",
    "UserMessage",
    "WebSocketConnection",
    "WebSocketConnectionManager",
    "WebSocketMessage",
    "WebSocketSessionManager",
    "__version__",
    "authenticate_websocket",
    "create_app",
    "handles",
    "hookimpl",
    "hookspec",
    "parse_message",
]
