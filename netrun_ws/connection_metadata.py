"""``ConnectionMetadata``: netrun-websocket 1.0's per-connection record, read from a ``Connection``.

netrun-ws keeps a connection's live state on :class:`netrun_ws.connection.Connection` (slots,
counters updated by its writer, epoch-second floats). 1.0 code reads a ``ConnectionMetadata``
with 1.0's attribute names and types (datetimes in UTC);
:meth:`WebSocketConnectionManager.get_connection_metadata` builds one on demand, so the connect
and send paths pay nothing for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
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


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)


class ConnectionMetadata:
    """One connection: who, where from, since when, and its traffic (1.0's record).

    The constructor takes 1.0's arguments in 1.0's order; ``state`` starts CONNECTED and the
    times (timezone-aware UTC datetimes) start at now. ``message_count`` counts messages in
    both directions.
    """

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "connected_at",
        "connection_id",
        "endpoint",
        "ip_address",
        "last_activity",
        "last_ping",
        "message_count",
        "metadata",
        "session_id",
        "state",
        "user_agent",
        "user_id",
        "websocket",
    )

    def __init__(
        self,
        connection_id: str,
        user_id: str,
        websocket: WebSocket,
        session_id: str | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
        endpoint: str = DEFAULT_ENDPOINT,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.connection_id = connection_id
        self.user_id = user_id
        self.session_id = session_id
        self.websocket = websocket
        self.state = ConnectionState.CONNECTED
        now = datetime.now(UTC)
        self.connected_at = self.last_activity = self.last_ping = now
        self.message_count = self.bytes_sent = self.bytes_received = 0
        self.ip_address = ip_address
        self.user_agent = user_agent
        self.endpoint = endpoint
        self.metadata: dict[str, Any] = metadata or {}

    def __repr__(self) -> str:
        return (
            f"ConnectionMetadata(connection_id={self.connection_id!r}, "
            f"user_id={self.user_id!r}, state={self.state.value!r})"
        )

    @classmethod
    def of(cls, connection: Connection, origin: ConnectionOrigin | None) -> ConnectionMetadata:
        """A snapshot of ``connection`` (``metadata`` is a shallow copy).

        The manager does not ping (a ``HeartbeatMonitor`` does), so ``last_ping`` keeps 1.0's
        initial value: the connect time.
        """
        origin = origin or _DEFAULT_ORIGIN
        record = cls(
            connection.connection_id,
            connection.user_id,
            connection.websocket,
            connection.session_id,
            origin.ip_address,
            origin.user_agent,
            origin.endpoint,
            dict(connection.metadata),
        )
        if connection.closed:
            record.state = ConnectionState.DISCONNECTED
        record.connected_at = record.last_ping = _utc(connection.connected_at)
        record.last_activity = _utc(connection.last_activity)
        record.message_count = connection.messages_sent + connection.messages_received
        record.bytes_sent = connection.bytes_sent
        record.bytes_received = connection.bytes_received
        return record

    def to_dict(self) -> dict[str, Any]:
        """Every attribute but ``websocket``, JSON-ready: ``state`` as its value, times as ISO
        8601 strings; 1.0's keys in 1.0's order."""
        return {
            "connection_id": self.connection_id,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "state": self.state.value,
            "endpoint": self.endpoint,
            "connected_at": self.connected_at.isoformat(),
            "last_activity": self.last_activity.isoformat(),
            "last_ping": self.last_ping.isoformat(),
            "message_count": self.message_count,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "ip_address": self.ip_address,
            "user_agent": self.user_agent,
            "metadata": dict(self.metadata),
        }
