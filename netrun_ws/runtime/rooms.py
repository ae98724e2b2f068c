"""Rooms: which local connections are in which room, mirrored to the store's cluster presence."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from netrun_ws.history import room_channel

if TYPE_CHECKING:
    from netrun_ws.connection import Connection
    from netrun_ws.host import Host

__all__ = ["Rooms"]

_NO_ROOMS: frozenset[str] = frozenset()


class Rooms:
    """This node's room membership; ``on_room_join``/``on_room_leave`` fire around each change."""

    def __init__(self, host: Host) -> None:
        self._host = host
        #: room -> ids of the local connections in it (what a room publish delivers to).
        self.members: dict[str, set[str]] = {}

    @staticmethod
    def of(connection: Connection) -> set[str]:
        rooms: set[str] = connection.metadata.setdefault("rooms", set())
        return rooms

    @staticmethod
    def joined(connection: Connection) -> AbstractSet[str]:
        """The rooms ``connection`` is in, to read: no set is made for a connection in none
        (most are; an empty set is about 200 bytes)."""
        rooms: AbstractSet[str] | None = connection.metadata.get("rooms")
        return _NO_ROOMS if rooms is None else rooms

    async def join(self, connection: Connection, room: str, *, record: bool = True) -> bool:
        """Add a connection to a room if no ``authorize_room`` implementation says False.

        ``record``: remember in the store's history where the session joined (the position a
        resume recovers from); False when a resumed session rejoins (its first join counts).
        """
        host = self._host
        if not await host.fire.authorize_room(connection, room):
            return False
        rooms = self.of(connection)
        if room in rooms:
            return True
        rooms.add(room)
        self.members.setdefault(room, set()).add(connection.connection_id)
        await host.store.join_room(room, connection.connection_id, connection.user_id)
        history = host.recovery.history
        if record and history is not None and connection.session_id is not None:
            if host.config.history.rooms_enabled:
                await history.record_join(connection.session_id, room_channel(room))
        await host.fire.on_room_join(connection, room)
        return True

    async def leave(self, connection: Connection, room: str) -> bool:
        """Remove a connection from a room; False if it was not a member."""
        if room not in self.joined(connection):
            return False
        await self.remove(connection, room)
        history = self._host.recovery.history
        if history is not None and connection.session_id is not None:
            await history.forget_join(connection.session_id, room_channel(room))
        return True

    async def remove(self, connection: Connection, room: str) -> None:
        """Leave without the membership check (a closing connection leaves every room)."""
        self.of(connection).discard(room)
        members = self.members.get(room)
        if members is not None:
            members.discard(connection.connection_id)
            if not members:
                del self.members[room]
        if self._host.started:
            await self._host.store.leave_room(room, connection.connection_id)
        await self._host.fire.on_room_leave(connection, room)
