"""A deterministic echo workload for counting instructions (``valgrind --tool=callgrind``).

Wall-clock figures on a shared 2-core machine are noise; instruction counts are not. This runs the
benchmark's netrun-ws app (``bench/servers.py``'s config: JWT, the metrics, heartbeat, reconnect
and echo plugins, the rate limiter) in one process with no socket and no client: a connection of
``netrun-ws run``'s websocket protocol is handed the upgrade request, then masked text frames in
batches of ``--inflight`` (as one ``data_received`` per batch, the way a client with that many
requests in flight is read), and each batch's replies are awaited before the next. So everything
a message costs on the server between the socket's bytes and the reply's bytes is counted, and
nothing else is::

    for n in 0 4000; do
        valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n \\
            python -m bench.echo_instructions --messages $n
    done
    # instructions per message = (total(4000) - total(0)) / 4000

``--profile`` runs the same workload under cProfile instead and prints the top entries.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import struct
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from bench.echo_plugin import Echo, Publish
from bench.loadgen import make_tokens
from bench.servers import EXTRA_PLUGINS, netrun_config
from netrun_ws import hookimpl
from netrun_ws.app import create_app, load_app_config

_MASK = b"\x11\x22\x33\x44"
#: Frames prepared in every run (sent or not): a run's total minus an empty run's counts only
#: what the messages cost the server.
PREPARED = 4000


def masked_text_frame(payload: bytes) -> bytes:
    """A client's text frame (clients must mask, RFC 6455 section 5.3)."""
    length = len(payload)
    if length < 126:
        header = bytes((0x81, 0x80 | length))
    else:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, length)
    key = (_MASK * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
    return header + _MASK + masked


class MemoryTransport(asyncio.Transport):
    """Collects what the protocol writes; counts the reply frames' first bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in ("sockname", "peername"):
            return ("127.0.0.1", 40000)
        return default


class Plugin:
    """``--sync``: the echo plugin with a plain (not ``async``) ``on_message``, as many apps write
    it (a reply returned by a plain function is checked for being awaitable)."""

    @hookimpl
    def register_message_types(self) -> list[type[BaseModel]]:
        return [Echo, Publish]

    @hookimpl
    def on_message(self, message: Echo) -> Echo:
        return message


async def _turns_until(done: Callable[[], bool]) -> None:
    """Let the event loop run until ``done()`` (no sleeping: nothing here waits on time)."""
    for _turn in range(100_000):
        if done():
            return
        await asyncio.sleep(0)
    raise RuntimeError("the server did not answer")


def netrun_uvicorn_config(app: Any, **options: Any) -> Any:
    """A loaded ``uvicorn.Config`` for ``app`` on netrun-ws's protocols, as the benchmark's
    servers run (``options``: more of uvicorn's settings)."""
    import uvicorn

    from netrun_ws.cli import http_protocol_class, ws_protocol_class

    config = uvicorn.Config(
        app,
        lifespan="on",
        log_level="warning",
        ws=ws_protocol_class("netrun"),
        http=http_protocol_class("netrun"),
        ws_max_size=65536,
        **options,
    )
    config.load()
    return config


async def run(messages: int, inflight: int, sync: bool = False, kind: str = "netrun") -> int:
    from uvicorn.lifespan.on import LifespanOn
    from uvicorn.server import ServerState

    settings = netrun_config(False, EXTRA_PLUGINS[kind])
    if sync:
        settings["plugins"] = ["bench.echo_instructions"]
    loaded = load_app_config(settings)
    app = create_app(loaded)
    config = netrun_uvicorn_config(app)
    lifespan = LifespanOn(config)
    await lifespan.startup()
    state = ServerState()
    protocol = config.ws_protocol_class(config, state, {})  # type: ignore[misc]
    transport = MemoryTransport()
    protocol.connection_made(transport)
    token = make_tokens(1)[0]
    protocol.data_received(
        # Header names in lower case, as uvicorn's HTTP protocol hands an upgrade over.
        b"GET /ws HTTP/1.1\r\nhost: bench\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n"
        + f"authorization: Bearer {token}\r\n\r\n".encode()
    )
    await _turns_until(lambda: b"\r\n\r\n\x81" in b"".join(transport.written))  # 101, welcome
    payload = "x" * 40
    batches = [
        b"".join(
            masked_text_frame(
                f'{{"type":"echo","seq":{seq},"t":1700000000000000000,"payload":"{payload}"}}'.encode()
            )
            for seq in range(start, start + inflight)
        )
        # Always as many as the largest run, so that preparing them is not counted per message.
        for start in range(0, max(messages, PREPARED), inflight)
    ]
    replies = 0
    for batch in batches[: messages // inflight]:
        transport.written.clear()
        protocol.data_received(batch)
        await _turns_until(lambda: b"".join(transport.written).count(b'"echo"') >= inflight)
        replies += inflight
    transport.close()
    protocol.connection_lost(None)
    await lifespan.shutdown()
    return replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--inflight", type=int, default=8)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sync", action="store_true", help="a plain on_message (see Plugin)")
    parser.add_argument(
        "--kind",
        choices=sorted(EXTRA_PLUGINS),
        default="netrun",
        help="with 1 or 3 extra plugins handling other types (the dispatch-by-type cost)",
    )
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    import uvloop

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        uvloop.run(run(args.messages, args.inflight, args.sync, args.kind))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return
    replies = uvloop.run(run(args.messages, args.inflight, args.sync, args.kind))
    print(f"{replies} replies")


if __name__ == "__main__":
    main()
