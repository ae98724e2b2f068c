"""What an idle connection keeps in memory, in-process: where scenario 4's RSS per connection goes.

Like ``bench/connect_instructions.py``, one process, no socket: each connection is a fresh HTTP
protocol of the server handed an upgrade request with a bearer JWT; once the welcome (netrun-ws)
or the 101 (raw ASGI) is written the connection is left open and idle. After ``--connections``
of them, the Python heap they added is read with ``tracemalloc`` (per connection, and the
largest allocation sites grouped by traceback) and the process's RSS growth with psutil::

    python -m bench.idle_memory --server netrun --connections 2000 --top 25

The RSS figure misses what the event loop's real transports and the kernel hold per socket
(there is none here), so it is lower than scenario 4's; the tracemalloc figure counts only
Python-heap allocations. Both compare netrun-ws with itself before and after a change.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tracemalloc
from typing import Any

import psutil

from bench.connect_instructions import (
    CLOSE_FRAME,
    Socket,
    _turns_until,
    _uvicorn_config,
    upgrade_request,
)
from bench.loadgen import make_tokens


async def _open(config: Any, state: Any, request: bytes, greeting: bytes) -> Socket:
    socket = Socket()
    http = config.http_protocol_class(config=config, server_state=state, app_state={})
    socket.protocol = http
    http.connection_made(socket)
    http.data_received(request)
    await _turns_until(lambda: greeting in b"".join(socket.written))
    for _turn in range(5):  # let the handshake's tasks and callbacks settle
        await asyncio.sleep(0)
    socket.written.clear()
    return socket


async def run(server: str, connections: int, top: int, depth: int, trace: bool) -> None:
    from uvicorn.lifespan.on import LifespanOn
    from uvicorn.server import ServerState

    config = _uvicorn_config(server)
    if not config.loaded:
        config.load()
    lifespan = LifespanOn(config)
    await lifespan.startup()
    if getattr(config, "gc_freeze", False):
        gc.freeze()
    state = ServerState()
    greeting = b"\x81" if server == "netrun" else b"\r\n\r\n"
    requests = [upgrade_request(token) for token in make_tokens(connections + 20)]
    sockets = [await _open(config, state, request, greeting) for request in requests[:20]]
    for socket in sockets:  # warm-up connections, closed, as scenario 4 does
        socket.protocol.connection_lost(None)
    await _turns_until(lambda: not state.tasks)
    sockets.clear()
    gc.collect()
    process = psutil.Process()
    rss_before = process.memory_info().rss
    if not trace:  # tracemalloc's own bookkeeping would count in the RSS
        for request in requests[20:]:
            sockets.append(await _open(config, state, request, greeting))
        gc.collect()
        rss = (process.memory_info().rss - rss_before) / connections
        print(f"{server}: {connections} idle connections, RSS growth {rss:,.0f} B per connection")
        await _close(sockets, state, lifespan)
        return
    tracemalloc.start(depth)
    before = tracemalloc.take_snapshot()
    for request in requests[20:]:
        sockets.append(await _open(config, state, request, greeting))
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    # Not the server's: the test's own Socket objects and their lists.
    filters = [tracemalloc.Filter(False, "*/bench/*"), tracemalloc.Filter(False, "*tracemalloc*")]
    stats = after.filter_traces(filters).compare_to(before.filter_traces(filters), "traceback")
    total = sum(stat.size_diff for stat in stats)
    print(f"{server}: {connections} idle connections")
    print(f"  Python heap (tracemalloc): {total / connections:,.0f} B per connection")
    for stat in stats[:top]:
        if stat.size_diff <= 0:
            continue
        print(
            f"\n{stat.size_diff / connections:8.1f} B  {stat.count_diff / connections:5.2f} blocks"
        )
        for line in stat.traceback.format(most_recent_first=True)[::2][:depth]:
            print(f"      {line.strip()}")
    await _close(sockets, state, lifespan)


async def _close(sockets: list[Socket], state: Any, lifespan: Any) -> None:
    for socket in sockets:
        socket.protocol.data_received(CLOSE_FRAME)
    await _turns_until(lambda: all(socket.closing for socket in sockets))
    for socket in sockets:
        socket.protocol.connection_lost(None)
    await _turns_until(lambda: not state.tasks)
    await lifespan.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("netrun", "raw_asgi", "raw_netrun"), default="netrun")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--rss", action="store_true", help="RSS growth only, without tracemalloc")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    import uvloop

    uvloop.run(run(args.server, args.connections, args.top, args.depth, not args.rss))


if __name__ == "__main__":
    main()
