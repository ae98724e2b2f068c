"""store: memory - sessions, rooms and delivery inside this one process (no external service).

A published envelope is delivered straight to this node; use a cluster store to run several nodes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from netrun_ws import hookimpl
from netrun_ws.session import WebSocketSessionManager
from netrun_ws.store import Deliver, Envelope


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection_ttl: int = Field(3600, gt=0, description="Seconds a saved session state is kept.")


class MemoryStore:
    """A single-node Store."""

    def __init__(self, connection_ttl: int = 3600) -> None:
        self.sessions = WebSocketSessionManager(connection_ttl=connection_ttl)
        self._deliver: Deliver | None = None
        self._rooms: dict[str, dict[str, str]] = {}

    async def start(self, deliver: Deliver) -> None:
        await self.sessions.initialize()
        self._deliver = deliver

    async def stop(self) -> None:
        self._deliver = None
        await self.sessions.close()

    async def ready(self) -> bool:
        return self._deliver is not None

    async def publish(self, envelope: Envelope) -> int:
        if self._deliver is None:
            raise RuntimeError("the memory store is not started")
        return await self._deliver(envelope)

    async def join_room(self, room: str, connection_id: str, user_id: str) -> None:
        self._rooms.setdefault(room, {})[connection_id] = user_id

    async def leave_room(self, room: str, connection_id: str) -> None:
        members = self._rooms.get(room)
        if members is not None:
            members.pop(connection_id, None)
            if not members:
                del self._rooms[room]

    async def room_members(self, room: str) -> dict[str, str]:
        return dict(self._rooms.get(room, {}))


class Plugin:
    def __init__(self) -> None:
        self.options = Options()

    @hookimpl
    def configure(self, options: Options) -> None:
        self.options = options

    @hookimpl
    def provide_store(self) -> MemoryStore:
        return MemoryStore(connection_ttl=self.options.connection_ttl)
