"""``ConnectionMetadata``: netrun-websocket 1.0's per-connection record, read from a ``Connection``.

netrun-ws keeps a connection's live state on :class:`netrun_ws.connection.Connection` (slots,
counters updated by its writer). 1.0 code reads a ``ConnectionMetadata`` with its own field
names; :meth:`WebSocketConnectionManager.get_connection_metadata` builds one on demand, so the
connect and send paths pay nothing for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket

from netrun_ws.connection import Connection
from netrun_ws.protocol import ConnectionState

__all__ = ["DEFAULT_ENDPOINT", "ConnectionMetadata", "ConnectionOrigin"]

#: ``connect``'s default ``endpoint``, as in netrun-websocket 1.0.
DEFAULT_ENDPOINT = "/ws"


@dataclass(frozen=True, slots=True)
class ConnectionOrigin:
    """Where a connection came from, as the application told ``connect``."""

    endpoint: str = DEFAULT_ENDPOINT
    ip_address: str | None = None
    user_agent: str | None = None

    @classmethod
    def checked(cls, endpoint: object, ip_address: object, user_agent: object) -> ConnectionOrigin:
        """The origin, or ValueError naming the argument that is not a string."""
        if not isinstance(endpoint, str):
            hint = " (pass metadata=... by keyword)" if isinstance(endpoint, dict) else ""
            raise ValueError(f"endpoint must be a string, got {endpoint!r}{hint}")
        for name, value in (("ip_address", ip_address), ("user_agent", user_agent)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string or None, got {value!r}")
        return cls(endpoint, ip_address, user_agent)  # type: ignore[arg-type]


_DEFAULT_ORIGIN = ConnectionOrigin()


@dataclass(slots=True)
class ConnectionMetadata:
    """One connection: who, where from, since when, and its traffic.

    Times are epoch seconds (floats), as everywhere in netrun-ws. ``message_count`` counts
    messages in both directions; ``last_ping`` stays None unless the application sets it (the
    manager does not ping: :class:`netrun_ws.heartbeat.HeartbeatMonitor` does).
    """

    connection_id: str
    user_id: str
    websocket: WebSocket | None = None
    session_id: str | None = None
    state: ConnectionState = ConnectionState.CONNECTED
    connected_at: float = field(default_factory=time.time)
    last_activity: float = field(default_factory=time.time)
    last_ping: float | None = None
    message_count: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    ip_address: str | None = None
    user_agent: str | None = None
    endpoint: str = DEFAULT_ENDPOINT
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, connection: Connection, origin: ConnectionOrigin | None) -> ConnectionMetadata:
        """A snapshot of ``connection`` (``metadata`` is a shallow copy)."""
        origin = origin or _DEFAULT_ORIGIN
        return cls(
            connection_id=connection.connection_id,
            user_id=connection.user_id,
            websocket=connection.websocket,
            session_id=connection.session_id,
            state=ConnectionState.DISCONNECTED if connection.closed else ConnectionState.CONNECTED,
            connected_at=connection.connected_at,
            last_activity=connection.last_activity,
            message_count=connection.messages_sent + connection.messages_received,
            bytes_sent=connection.bytes_sent,
            bytes_received=connection.bytes_received,
            ip_address=origin.ip_address,
            user_agent=origin.user_agent,
            endpoint=origin.endpoint,
            metadata=dict(connection.metadata),
        )

    def to_dict(self) -> dict[str, Any]:
        """Every field but ``websocket``, JSON-ready (``state`` as its string value)."""
        return {
            "connection_id": self.connection_id,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "state": self.state.value,
            "connected_at": self.connected_at,
            "last_activity": self.last_activity,
            "last_ping": self.last_ping,
            "message_count": self.message_count,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "ip_address": self.ip_address,
            "user_agent": self.user_agent,
            "endpoint": self.endpoint,
            "metadata": dict(self.metadata),
        }
