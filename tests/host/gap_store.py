"""A memory store that can report a delivery gap on demand.

The host's reaction to a gap (log, ``on_delivery_gap``, the notice to clients) is tested with it;
real gaps from a restarted Redis are tested with the Redis store in tests/store/ and tests/cluster/.
"""

from __future__ import annotations

import time

from netrun_ws import hookimpl
from netrun_ws.builtin.store_memory import MemoryStore
from netrun_ws.store import Deliver, DeliveryGap, GapCallback


class GapStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self._on_gap: GapCallback | None = None

    async def start(self, deliver: Deliver, on_gap: GapCallback) -> None:
        await super().start(deliver, on_gap)
        self._on_gap = on_gap

    async def simulate_gap(self, seconds: float = 1.5) -> None:
        assert self._on_gap is not None
        now = time.time()
        await self._on_gap(DeliveryGap(now - seconds, now, "simulated outage"))


@hookimpl
def provide_store() -> GapStore:
    return GapStore()
