"""The interface a ``store`` slot plugin provides: sessions, room presence and a message broker.

The host never talks to memory or Redis directly; it asks the store to ``publish`` an ``Envelope``
and the store hands it to ``deliver`` on every node (itself included), each of which delivers to its
own connections. So swapping ``store: {plugin: memory}`` for a cluster-wide store changes nothing
else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from netrun_ws.connection import Frame
from netrun_ws.session import WebSocketSessionManager

EnvelopeKind = Literal["user", "room", "broadcast", "connection"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message addressed to a user, a room, a connection or everyone, encoded once as JSON."""

    kind: EnvelopeKind
    target: str | None
    payload: Frame  # the encoded message sent to each recipient (JSON text unless binary)
    exclude_users: frozenset[str] = field(default_factory=frozenset)
    exclude_connections: frozenset[str] = field(default_factory=frozenset)


#: What the host gives the store: deliver an envelope to this node's connections; returns how many.
Deliver = Callable[[Envelope], Awaitable[int]]


@runtime_checkable
class Store(Protocol):
    """What ``provide_store`` returns."""

    #: Connection sessions and their saved state (``WebSocketSessionManager`` API).
    sessions: WebSocketSessionManager

    async def start(self, deliver: Deliver) -> None:
        """Connect to the backend and start delivering published envelopes to ``deliver``."""

    async def stop(self) -> None:
        """Stop delivering and release the backend."""

    async def ready(self) -> bool:
        """True when the backend answers and published messages reach this node."""

    async def publish(self, envelope: Envelope) -> int:
        """Send ``envelope`` to every node; returns how many local connections it reached."""

    async def join_room(self, room: str, connection_id: str, user_id: str) -> None:
        """Record room membership (presence)."""

    async def leave_room(self, room: str, connection_id: str) -> None:
        """Forget room membership."""

    async def room_members(self, room: str) -> dict[str, str]:
        """Connection id -> user id of everyone in ``room``, on every node."""
