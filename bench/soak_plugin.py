"""The soak scenario's probe: ``GET /soak/stats`` answers the server's asyncio task count and its
open connections, so bench/soak.py can sample them beside RSS and file descriptors.

With ``NETRUN_SOAK_TRACEMALLOC=FILE`` in the server's environment it also traces allocations
(tracemalloc) and, every minute after the first, appends to FILE what grew since the first minute:
the biggest growths by allocation site and the object types whose counts grew. That is how a
memory growth seen in a soak run is looked into; it slows the server several times.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tracemalloc
from collections import Counter

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from netrun_ws import hookimpl
from netrun_ws.host import Host

TRACE_FRAMES = 6
TRACE_EVERY = 60.0


def _type_counts() -> Counter[str]:
    return Counter(type(obj).__qualname__ for obj in gc.get_objects())


async def _trace_growth(path: str) -> None:
    await asyncio.sleep(TRACE_EVERY)
    gc.collect()
    baseline, types = tracemalloc.take_snapshot(), _type_counts()
    minute = 1
    while True:
        await asyncio.sleep(TRACE_EVERY)
        minute += 1
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        grown = snapshot.compare_to(baseline, "traceback")[:12]
        counts = _type_counts() - types
        lines = [f"=== minute {minute}: growth since minute 1"]
        for stat in grown:
            lines.append(f"{stat.size_diff / 1024:+.1f} KiB {stat.count_diff:+d} blocks")
            lines += [f"    {line}" for line in stat.traceback.format()[-2 * TRACE_FRAMES :]]
        lines.append(f"object types grown: {counts.most_common(25)}")
        _append(path, "\n".join(lines) + "\n")


def _append(path: str, text: str) -> None:
    with open(path, "a") as out:
        out.write(text)


class Plugin:
    def __init__(self) -> None:
        self.host: Host | None = None
        self._tracer: asyncio.Task[None] | None = None

    @hookimpl
    def configure(self, host: Host) -> None:
        self.host = host

    @hookimpl
    def startup(self, host: Host) -> None:
        path = os.environ.get("NETRUN_SOAK_TRACEMALLOC")
        if path:
            tracemalloc.start(TRACE_FRAMES)
            self._tracer = asyncio.ensure_future(_trace_growth(path))

    @hookimpl
    def register_routes(self) -> list[BaseRoute]:
        return [Route("/soak/stats", self._stats, methods=["GET"])]

    async def _stats(self, request: Request) -> JSONResponse:
        connections = len(self.host.manager) if self.host is not None else 0
        return JSONResponse({"tasks": len(asyncio.all_tasks()), "connections": connections})
