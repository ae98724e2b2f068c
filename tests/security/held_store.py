"""A memory store whose ``add_connection`` can be held: an admission then waits between its
revocation check and its registration, the window a revocation may fall into."""

from __future__ import annotations

import asyncio

from netrun_ws import hookimpl
from netrun_ws.builtin.store_memory import MemoryStore


class HeldStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()

    async def add_connection(
        self, connection_id: str, user_id: str, max_per_user: int | None
    ) -> bool:
        self.waiting.set()
        await self.gate.wait()
        return await super().add_connection(connection_id, user_id, max_per_user)


@hookimpl
def provide_store() -> HeldStore:
    return HeldStore()
