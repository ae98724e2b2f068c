"""A deterministic connect workload for counting instructions (``valgrind --tool=callgrind``).

Like ``bench/echo_instructions.py`` for messages, for scenario 3's connections: one process, no
socket, no client. Each connection is a fresh HTTP protocol of the server (as uvicorn makes one
per accepted socket) handed the upgrade request with a bearer JWT as bytes; the server upgrades,
admits, sends the welcome (netrun-ws) or accepts (raw ASGI); then the client's masked close frame
arrives, the server answers it and the connection is lost. So everything a connection costs the
server between the socket's bytes and its replies is counted, and nothing else::

    for n in 0 500; do
        valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.netrun.$n \\
            python -m bench.connect_instructions --server netrun --connections $n
    done
    # instructions per connection = (total(500) - total(0)) / 500
    # --keep-open: the opens alone (scenario 3 times those; the connections stay open)

``--server raw_asgi`` runs ``servers.py``'s raw ASGI app on uvicorn's stock protocols (the
connect target's denominator), ``--server raw_netrun`` the same app on netrun-ws's protocols.
``--profile`` runs under cProfile and prints the top entries.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections.abc import Callable
from typing import Any

from bench.echo_instructions import MemoryTransport
from bench.loadgen import make_tokens
from bench.servers import netrun_config, raw_asgi_app

#: Tokens and requests prepared in every run (used or not): a run's total minus an empty run's
#: counts only what the connections cost the server.
PREPARED = 2000
#: A client's close frame, code 1000, masked with 00 00 00 00 (RFC 6455 allows any key).
CLOSE_FRAME = b"\x88\x82\x00\x00\x00\x00\x03\xe8"


class Socket(MemoryTransport):
    """One accepted socket: what the server writes, and the protocol uvicorn switches it to."""

    def __init__(self) -> None:
        super().__init__()
        self.protocol: Any = None

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def get_write_buffer_size(self) -> int:
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (16384, 65536)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


def upgrade_request(token: str) -> bytes:
    return (
        b"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + f"Authorization: Bearer {token}\r\n\r\n".encode()
    )


async def _turns_until(done: Callable[[], bool]) -> None:
    for _turn in range(100_000):
        if done():
            return
        await asyncio.sleep(0)
    raise RuntimeError("the server did not answer")


async def _connect(config: Any, state: Any, request: bytes, welcome: bytes) -> Socket:
    """One connection: upgrade, wait for ``welcome`` in the replies."""
    socket = Socket()
    http = config.http_protocol_class(config=config, server_state=state, app_state={})
    socket.protocol = http
    http.connection_made(socket)
    http.data_received(request)
    await _turns_until(lambda: welcome in b"".join(socket.written))  # 101 (and welcome)
    return socket


async def _connect_and_close(config: Any, state: Any, request: bytes, welcome: bytes) -> None:
    """One connection: upgrade, wait for ``welcome`` in the replies, close, lose the socket."""
    socket = await _connect(config, state, request, welcome)
    socket.protocol.data_received(CLOSE_FRAME)
    await _turns_until(lambda: socket.closing)
    socket.protocol.connection_lost(None)
    await _turns_until(lambda: not state.tasks)


def _uvicorn_config(server: str) -> Any:
    import uvicorn

    if server == "raw_asgi":
        # uvicorn's stock protocols, as servers.py serves raw_asgi.
        return uvicorn.Config(
            raw_asgi_app("echo"), lifespan="on", log_level="warning", ws_max_size=65536
        )
    from netrun_ws.app import create_app, load_app_config
    from netrun_ws.cli import guard_connections, http_protocol_class, ws_protocol_class

    if server == "raw_netrun":
        # The same raw app on netrun-ws's protocols (servers.py's raw_asgi_netrun_protocol).
        return uvicorn.Config(
            raw_asgi_app("echo"),
            lifespan="on",
            log_level="warning",
            ws_max_size=65536,
            ws=ws_protocol_class("netrun"),
            http=http_protocol_class("netrun"),
        )

    # As netrun_ws.cli.build_server builds it: its protocols, request guard and GC threshold
    # (the heap is frozen once started, in run()).
    loaded = load_app_config(netrun_config(False))
    server = loaded.config.server
    if server.gc_threshold is not None:
        _first, *older = gc.get_threshold()
        gc.set_threshold(server.gc_threshold, *older)
    config = uvicorn.Config(
        create_app(loaded),
        lifespan="on",
        log_level="warning",
        ws=ws_protocol_class("netrun", loaded.config.limits),
        http=http_protocol_class("netrun"),
        ws_max_size=65536,
    )
    guard_connections(config, loaded.config.limits)
    config.gc_freeze = server.gc_freeze  # type: ignore[attr-defined]
    return config


async def run(server: str, connections: int, keep_open: bool = False) -> int:
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
    requests = [upgrade_request(token) for token in make_tokens(max(connections, PREPARED))]
    welcome = b"\x81" if server == "netrun" else b"\r\n\r\n"
    done = 0
    kept = []
    for request in requests[:connections]:
        if keep_open:
            kept.append(await _connect(config, state, request, welcome))
        else:
            await _connect_and_close(config, state, request, welcome)
        done += 1
    if keep_open:
        # Scenario 3 times the opens only: leave at once, without closing anything.
        print(f"{done} connections opened")
        sys.stdout.flush()
        os._exit(0)
    await lifespan.shutdown()
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("netrun", "raw_asgi", "raw_netrun"), default="netrun")
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--keep-open",
        action="store_true",
        help="open the connections and exit without closing them (what scenario 3 times)",
    )
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    import uvloop

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        uvloop.run(run(args.server, args.connections, args.keep_open))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
        return
    print(f"{uvloop.run(run(args.server, args.connections, args.keep_open))} connections")


if __name__ == "__main__":
    main()
