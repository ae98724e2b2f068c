"""A store plugin written against the ``Store`` calls only (no ``open_connection`` or
``close_connection``), as a third-party store may be: it hands every call to a memory store and
records the names of the per-connection ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from netrun_ws import hookimpl
from netrun_ws.builtin.store_memory import MemoryStore
from netrun_ws.store import Deliver, Envelope, GapCallback, PublishResult


class RecordingSessions:
    """The memory store's session manager, recording the calls a connection makes."""

    def __init__(self, inner: Any, calls: list[str]) -> None:
        self._inner = inner
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def claim_session(self, session_id: str, user_id: str) -> bool:
        self._calls.append("claim_session")
        return bool(await self._inner.claim_session(session_id, user_id))

    async def create_connection(self, session_id: str, user_id: str, username: str) -> str:
        self._calls.append("create_connection")
        return str(await self._inner.create_connection(session_id, user_id, username))

    async def save_connection_state(self, connection_id: str, state: dict[str, Any]) -> bool:
        self._calls.append("save_connection_state")
        return bool(await self._inner.save_connection_state(connection_id, state))

    async def disconnect(self, connection_id: str, save_state: bool = True) -> bool:
        self._calls.append("disconnect")
        return bool(await self._inner.disconnect(connection_id, save_state))


class OlderStore:
    """Every ``Store`` call, and nothing else."""

    def __init__(self) -> None:
        self._memory = MemoryStore()
        self.calls: list[str] = []
        self.sessions = RecordingSessions(self._memory.sessions, self.calls)
        self.node_id = self._memory.node_id

    async def start(self, deliver: Deliver, on_gap: GapCallback) -> None:
        await self._memory.start(deliver, on_gap)

    async def stop(self) -> None:
        await self._memory.stop()

    async def ready(self) -> bool:
        return await self._memory.ready()

    async def publish(self, envelope: Envelope) -> PublishResult:
        return await self._memory.publish(envelope)

    async def add_connection(
        self, connection_id: str, user_id: str, max_per_user: int | None
    ) -> bool:
        self.calls.append("add_connection")
        return await self._memory.add_connection(connection_id, user_id, max_per_user)

    async def remove_connection(self, connection_id: str, user_id: str) -> None:
        self.calls.append("remove_connection")
        await self._memory.remove_connection(connection_id, user_id)

    async def join_room(self, room: str, connection_id: str, user_id: str) -> None:
        await self._memory.join_room(room, connection_id, user_id)

    async def leave_room(self, room: str, connection_id: str) -> None:
        await self._memory.leave_room(room, connection_id)

    async def room_members(self, room: str) -> dict[str, str]:
        return await self._memory.room_members(room)

    async def online_users(self) -> set[str]:
        return await self._memory.online_users()

    async def nodes(self) -> list[dict[str, Any]]:
        return await self._memory.nodes()

    async def revoke(self, subject: str, revoked_at: float, until: float) -> None:
        await self._memory.revoke(subject, revoked_at, until)

    async def revoked(self, subjects: Sequence[str]) -> list[float | None]:
        self.calls.append("revoked")
        return await self._memory.revoked(subjects)

    def stats(self) -> dict[str, Any]:
        return self._memory.stats()


@hookimpl
def provide_store() -> OlderStore:
    return OlderStore()
