"""A deterministic fan-out workload for counting instructions (``valgrind --tool=callgrind``).

The fan-out counterpart of ``bench/echo_instructions.py``: the benchmark's netrun-ws app
(``bench/servers.py``'s config, the whole pipeline) in one process with no socket and no client.
``--receivers`` connections of ``netrun-ws run``'s websocket protocol are handed their upgrade
requests (each its own JWT user) and one more, the publisher, sends ``publish`` frames in batches
of ``--inflight`` (one ``data_received`` per batch); each batch is awaited until every receiver's
transport was written to. ``--kind broadcast`` is the fan-out scenario (``host.broadcast``, the
echo plugin), ``room_history`` / ``room_nohistory`` the history scenario (``host.publish_room``
to a room every receiver joined, ``history.rooms_enabled`` on or off; bench/room_plugin.py)::

    for n in 0 200; do
        valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n \\
            python -m bench.fanout_instructions --messages $n
    done
    # instructions per delivery = (total(200) - total(0)) / (200 * 1000)

What is counted: everything the server does in user space from the publisher's bytes to the
receivers' socket transports' ``write`` calls (the corked write and the guard's included),
plus, per delivery, one ``list.append`` (the stand-in socket transport's write) and the final
check that every receiver got every message (a join and a ``bytes.count``: tens of
instructions per delivery). Not counted: uvloop's own ``write`` and the kernel's ``send``, the
same for every server in the bench.

``--profile`` runs the same workload under cProfile instead and prints the top entries.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from bench.echo_instructions import (
    PREPARED,
    _turns_until,
    masked_text_frame,
    netrun_uvicorn_config,
)
from bench.loadgen import make_tokens
from bench.servers import netrun_config, room_config
from netrun_ws.app import create_app, load_app_config
from netrun_ws.cli import guard_connections
from netrun_ws.transport.guard import GuardedTransport
from netrun_ws.transport.pending import PendingRequests

KINDS = ("broadcast", "room_history", "room_nohistory")


class SinkTransport(asyncio.Transport):
    """The socket's transport: its ``write`` is a shared list's ``append``, ``is_closing`` is
    ``bool`` and ``get_write_buffer_size`` is ``int`` (C calls, as uvloop's are, and nearly free:
    False and 0), so the stand-in costs next to nothing per delivery."""

    def __init__(self, sink: list[bytes]) -> None:
        super().__init__()
        self.write = sink.append  # type: ignore[method-assign,assignment]
        self.is_closing = bool  # type: ignore[method-assign,assignment]
        self.get_write_buffer_size = int  # type: ignore[method-assign,assignment]

    def close(self) -> None:
        self.is_closing = lambda: True  # type: ignore[method-assign]

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        pass

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (16384, 65536)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in ("sockname", "peername"):
            return ("127.0.0.1", 40000)
        return default


class _Guard:
    """What a :class:`GuardedTransport` needs of its ``GuardedProtocol`` (the HTTP side that the
    upgrade leaves behind): the loop, and the served limits (the frame budget is read from them
    at the upgrade)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pending: PendingRequests) -> None:
        self.loop = loop
        self.pending = pending

    def settle(self) -> None:
        pass

    def upgraded(self) -> None:
        pass


def upgrade_request(token: str) -> bytes:
    # Header names in lower case, as uvicorn's HTTP protocol hands an upgrade over.
    return (
        b"GET /ws HTTP/1.1\r\nhost: bench\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n"
        + f"authorization: Bearer {token}\r\n\r\n".encode()
    )


async def run(messages: int, receivers: int, inflight: int, kind: str) -> int:
    from uvicorn.lifespan.on import LifespanOn
    from uvicorn.server import ServerState

    if kind == "broadcast":
        settings = netrun_config(False)
    else:
        settings = room_config(False, kind == "room_history")
    # Under valgrind a run lasts minutes: the heartbeat's and uvicorn's pings (timers, no cost
    # per delivery) would find 1,001 silent clients and close them mid-run.
    settings["heartbeat"] = {**settings["heartbeat"], "interval": 3600, "timeout": 7200}
    app = create_app(load_app_config(settings))
    config = netrun_uvicorn_config(app, ws_ping_interval=None)
    # The limits `netrun-ws run` guards every connection with (the guarded HTTP class keeps them).
    guard_connections(config, app.state.host.config.limits)
    pending = config.http_protocol_class.pending
    lifespan = LifespanOn(config)
    await lifespan.startup()
    state = ServerState()
    tokens = make_tokens(receivers + 1)
    sink: list[bytes] = []
    loop = asyncio.get_running_loop()
    protocols = []
    for token in tokens:
        protocol = config.ws_protocol_class(config, state, {})  # type: ignore[misc]
        # Under the guard every served connection has (netrun_ws.transport.guard), upgraded.
        guarded = GuardedTransport(SinkTransport(sink), _Guard(loop, pending))  # type: ignore[arg-type]
        guarded.set_protocol(protocol)
        protocol.connection_made(guarded)
        protocol.data_received(upgrade_request(token))
        protocols.append(protocol)
        # Connected one at a time, each up to its welcome (no frame of it is counted below).
        await _turns_until(lambda: b'"type":"connect"' in b"".join(sink))
        sink.clear()
    publisher = protocols[0]
    payload = "x" * 40
    batches = [
        b"".join(
            masked_text_frame(
                f'{{"type":"publish","seq":{seq},"t":1700000000000000000,"payload":"{payload}"}}'.encode()
            )
            for seq in range(start, start + inflight)
        )
        # Always as many as the largest run, so that preparing them is not counted per message.
        for start in range(0, max(messages, PREPARED // 10), inflight)
    ]
    chunks: list[bytes] = []
    started = time.process_time()
    for batch in batches[: messages // inflight]:
        publisher.data_received(batch)
        # Every receiver is written to once per loop iteration (corked), so this is the batch.
        await _turns_until(lambda: len(sink) >= receivers)
        await asyncio.sleep(0)  # one more turn: the flush that follows the last delivery
        chunks += sink
        sink.clear()
    elapsed = time.process_time() - started
    deliveries = b"".join(chunks).count(b'"type":"publish"')
    expected = (messages // inflight) * inflight * receivers
    if deliveries != expected:
        raise RuntimeError(f"{deliveries} deliveries, expected {expected}")
    if deliveries:  # CPU time: a rough look outside valgrind (noisy on a shared machine)
        print(f"{elapsed / deliveries * 1e9:.0f} ns per delivery (CPU time)")
    for protocol in protocols:
        protocol.transport.close()
        protocol.connection_lost(None)
    await lifespan.shutdown()
    return deliveries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--receivers", type=int, default=1000)
    parser.add_argument("--inflight", type=int, default=1)
    parser.add_argument("--kind", choices=KINDS, default="broadcast")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    import uvloop

    work = run(args.messages, args.receivers, args.inflight, args.kind)
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        deliveries = uvloop.run(work)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    else:
        deliveries = uvloop.run(work)
    print(f"{deliveries} deliveries")


if __name__ == "__main__":
    main()
