"""The soak scenario's probe: ``GET /soak/stats`` answers the server's asyncio task count and its
open connections, so bench/soak.py can sample them beside RSS and file descriptors.

With ``NETRUN_SOAK_TRACEMALLOC=FILE`` in the server's environment it also traces allocations
(tracemalloc) and, every minute after the first, appends to FILE what grew since the first minute:
the biggest growths by allocation site and the object types whose counts grew. That is how a
memory growth seen in a soak run is looked into; it slows the server several times.

``NETRUN_SOAK_HEAP=FILE`` is the cheap look: every 30 seconds one JSON line with the Python
heap's allocated blocks, glibc's malloc counters (``mallinfo2``: bytes in use, free but kept in
the heap, mmapped) and, every other minute, the object types whose counts grew since the first
minute. It says whether an RSS rise is live Python objects, memory the allocator keeps after a
burst, or neither.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import json
import os
import sys
import time
import tracemalloc
from collections import Counter

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from netrun_ws import hookimpl
from netrun_ws.host import Host

TRACE_FRAMES = 6
TRACE_EVERY = 60.0
HEAP_EVERY = 30.0


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


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _mallinfo() -> dict[str, int]:
    """glibc's heap counters in bytes ({} on other C libraries)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        call = libc.mallinfo2
    except (OSError, AttributeError, TypeError):
        return {}
    call.restype = _MallInfo2
    info = call()
    return {"heap": info.arena, "in_use": info.uordblks, "free_kept": info.fordblks,
            "mmapped": info.hblkhd}  # fmt: skip


async def _heap_lines(path: str) -> None:
    started = time.monotonic()
    types: Counter[str] | None = None
    tick = 0
    while True:
        await asyncio.sleep(HEAP_EVERY)
        tick += 1
        line: dict[str, object] = {
            "t": round(time.monotonic() - started),
            "blocks": sys.getallocatedblocks(),
            **_mallinfo(),
        }
        if tick == 2:
            types = _type_counts()
        elif types is not None and tick % 4 == 0:
            line["types_grown"] = (_type_counts() - types).most_common(15)
        _append(path, json.dumps(line) + "\n")


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
        path = os.environ.get("NETRUN_SOAK_HEAP")
        if path:
            self._tracer = asyncio.ensure_future(_heap_lines(path))

    @hookimpl
    def register_routes(self) -> list[BaseRoute]:
        return [Route("/soak/stats", self._stats, methods=["GET"])]

    async def _stats(self, request: Request) -> JSONResponse:
        connections = len(self.host.manager) if self.host is not None else 0
        return JSONResponse({"tasks": len(asyncio.all_tasks()), "connections": connections})
