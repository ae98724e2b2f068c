"""store: memory - sessions, presence and delivery inside this one process (no external service).

A published envelope is delivered straight to this node. Use ``store: {plugin: redis}`` to run
several nodes as one service.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from netrun_ws import hookimpl
from netrun_ws.config import HistoryConfig
from netrun_ws.history import MemoryHistory
from netrun_ws.ids_by_user import IdsByUser
from netrun_ws.session import WebSocketSessionManager
from netrun_ws.store import (
    Deliver,
    Envelope,
    GapCallback,
    HistoryRead,
    Opened,
    Position,
    PublishResult,
    RevocationCheck,
    revocation_refuses,
)


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    connection_ttl: float = Field(3600, gt=0, description="Seconds a saved session state is kept.")


class MemoryStore:
    """A single-node Store (and HistoryStore, ConnectionRecords): the reference behaviour the
    Redis store matches.

    History lives in this process: a restart starts a new epoch.
    """

    def __init__(self, connection_ttl: float = 3600) -> None:
        self.sessions = WebSocketSessionManager(connection_ttl=connection_ttl)
        self.history = MemoryHistory(HistoryConfig(), connection_ttl)
        self.node_id = f"memory-{uuid.uuid4().hex[:12]}"
        self._deliver: Deliver | None = None
        self._rooms: dict[str, dict[str, str]] = {}
        self._users = IdsByUser()
        self._started_at = 0.0
        self._published = 0
        # subject -> (revoked_at, until): entries are few (one per revoke call) and swept then.
        self._revoked: dict[str, tuple[float, float]] = {}

    async def start(self, deliver: Deliver, on_gap: GapCallback) -> None:
        await self.sessions.initialize()
        self._deliver = deliver
        self._started_at = time.time()

    async def stop(self) -> None:
        self._deliver = None
        await self.sessions.close()

    async def ready(self) -> bool:
        return self._deliver is not None

    async def publish(self, envelope: Envelope) -> PublishResult:
        if self._deliver is None:
            raise RuntimeError("the memory store is not started")
        self._published += 1
        if envelope.pos is None:
            envelope = self.history.position(envelope)
        return PublishResult(local=await self._deliver(envelope))

    # ---------------------------------------------------------------- history

    def configure_history(self, config: HistoryConfig) -> None:
        self.history.config = config

    async def history_top(self, channel: str) -> Position:
        return self.history.top(channel)

    async def history_since(
        self, channel: str, since: Position, max_messages: int, max_bytes: int
    ) -> HistoryRead:
        return self.history.since(channel, since, max_messages, max_bytes)

    async def record_join(self, session_id: str, channel: str) -> Position:
        return self.history.record_join(session_id, channel)

    async def forget_join(self, session_id: str, channel: str) -> None:
        self.history.forget_join(session_id, channel)

    async def session_channels(self, session_id: str) -> dict[str, Position]:
        return self.history.session_channels(session_id)

    # ---------------------------------------------------------------- a connection's records

    async def open_connection(
        self,
        session_id: str,
        user_id: str,
        username: str,
        max_per_user: int | None,
        revocations: Sequence[RevocationCheck],
    ) -> Opened:
        """The open's four calls as one (``ConnectionRecords``): no coroutine per call."""
        # Nothing revoked (the usual case): the checks are not read, nor the token's digest made.
        if (
            self._revoked
            and revocations
            and revocation_refuses(
                revocations, self._revoked_at([subject for subject, _ in revocations])
            )
        ):
            return Opened(None, "revoked")
        store_id = await self.sessions.claim_and_create(session_id, user_id, username)
        if store_id is None:
            return Opened(None, "session_not_yours")
        if not self._count(store_id, user_id, max_per_user):
            await self.sessions.disconnect(store_id, save_state=True)
            return Opened(None, "user_limit")
        return Opened(store_id)

    async def close_connection(
        self, store_id: str, session_id: str | None, user_id: str, state: dict[str, Any]
    ) -> bool:
        """The close's four calls as one (``ConnectionRecords``)."""
        self._uncount(store_id, user_id)
        return await self.sessions.save_and_disconnect(store_id, session_id, user_id, state)

    # ---------------------------------------------------------------- presence

    async def add_connection(
        self, connection_id: str, user_id: str, max_per_user: int | None
    ) -> bool:
        return self._count(connection_id, user_id, max_per_user)

    def _count(self, connection_id: str, user_id: str, max_per_user: int | None) -> bool:
        users = self._users
        if max_per_user is not None and users.count(user_id) >= max_per_user:
            return False
        users.add(user_id, connection_id)
        return True

    async def remove_connection(self, connection_id: str, user_id: str) -> None:
        self._uncount(connection_id, user_id)

    def _uncount(self, connection_id: str, user_id: str) -> None:
        self._users.discard(user_id, connection_id)

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

    async def online_users(self) -> set[str]:
        return set(self._users.users())

    async def revoke(self, subject: str, revoked_at: float, until: float) -> None:
        now = time.time()
        self._revoked = {key: entry for key, entry in self._revoked.items() if entry[1] > now}
        previous = self._revoked.get(subject, (revoked_at, until))
        self._revoked[subject] = (max(previous[0], revoked_at), max(previous[1], until))

    async def revoked(self, subjects: Sequence[str]) -> list[float | None]:
        return self._revoked_at(subjects)

    def _revoked_at(self, subjects: Sequence[str]) -> list[float | None]:
        now = time.time()
        entries = [self._revoked.get(subject) for subject in subjects]
        return [entry[0] if entry and entry[1] > now else None for entry in entries]

    async def nodes(self) -> list[dict[str, Any]]:
        return [{"node_id": self.node_id, "last_seen": time.time(), "started_at": self._started_at}]

    def stats(self) -> dict[str, Any]:
        return {
            "backend": "memory",
            "node_id": self.node_id,
            "published": self._published,
            "rooms": len(self._rooms),
            "online_users": len(self._users),
        }


class Plugin:
    def __init__(self) -> None:
        self.options = Options()

    @hookimpl
    def configure(self, options: Options) -> None:
        self.options = options

    @hookimpl
    def provide_store(self) -> MemoryStore:
        return MemoryStore(connection_ttl=self.options.connection_ttl)
