"""A cross-node ``send_to_user`` workload for counting instructions, WebSocket work included.

``bench/publish_instructions.py`` counts the Redis part alone; this counts the whole path of
bench/crossnode.py's latency windows, from the client's frame on node A to the frame written to
the receiver on node B. Two netrun-ws apps (node A, node B) run in one process with
``crossnode.py``'s config (anonymous auth, the Redis store, the chat plugin, prometheus), on a
private ``redis-server`` started here (not counted: valgrind does not follow it). Each node has
connections of ``netrun-ws run``'s websocket protocol, without sockets (as in
``bench/echo_instructions.py``): ``--senders`` on A (10), ``bob`` on B. In each round every
sender's chat ``direct`` message to bob arrives on A (as crossnode.py's senders send them
concurrently); a round ends when B has written every one of them to bob and A every ack. So a
message costs A's frame parsing, validation and plugin, the publish (history script), A's own
copy from the bus, the ack, B's delivery and bob's frame::

    for n in 0 1000; do
        valgrind --tool=callgrind --dump-instr=no --callgrind-out-file=/tmp/cg.x.$n \\
            python -m bench.crossnode_instructions --messages $n
    done
    # instructions per message = (total(1000) - total(0)) / 1000

``--profile`` runs the same workload under cProfile and prints the top entries.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from bench.crossnode import private_redis
from bench.echo_instructions import MemoryTransport, masked_text_frame, netrun_uvicorn_config

ROOT = Path(__file__).resolve().parent.parent


class CountingTransport(MemoryTransport):
    """Counts the frames written that hold ``marker``; wakes the workload at ``target``."""

    def __init__(self, marker: bytes) -> None:
        super().__init__()
        self.marker = marker
        self.seen = 0
        self.target = 0
        self.reached = asyncio.Event()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.seen += bytes(data).count(self.marker)
        if self.seen >= self.target:
            self.reached.set()

    async def until(self, target: int) -> None:
        self.target = target
        if self.seen < target:
            self.reached.clear()
            async with asyncio.timeout(60):  # not wait_for: no task per wait
                await self.reached.wait()


def node_config(redis_url: str) -> dict[str, Any]:
    """bench/crossnode.py's node config."""
    return {
        "server": {"path": "/ws", "log_level": "warning"},
        "limits": {
            "messages_per_second": 1_000_000,
            "max_connections_per_ip": 100_000,
            "max_connections_per_user": 1000,
            "max_pending_requests": 100_000,
            "max_pending_requests_per_ip": 100_000,
        },
        "auth": {"plugin": "anonymous"},
        "store": {"plugin": "redis", "url": redis_url},
        "heartbeat": {"plugin": "ping", "interval": 30, "timeout": 90},
        "metrics": [{"plugin": "prometheus"}],
        "plugins_dir": str(ROOT / "plugins"),
        "plugins": ["chat"],
    }


class Node:
    """One app with its lifespan, and connections of users on it."""

    def __init__(self, redis_url: str) -> None:
        from netrun_ws.app import create_app, load_app_config

        self.config = netrun_uvicorn_config(create_app(load_app_config(node_config(redis_url))))
        self.protocols: list[Any] = []

    async def start(self) -> None:
        from uvicorn.lifespan.on import LifespanOn

        self.lifespan = LifespanOn(self.config)
        await self.lifespan.startup()

    async def connect(self, user: str, marker: bytes) -> tuple[Any, CountingTransport]:
        """A connection of ``user``, welcomed; its transport counts the frames with ``marker``."""
        from uvicorn.server import ServerState

        protocol = self.config.ws_protocol_class(self.config, ServerState(), {})  # type: ignore[misc]
        transport = CountingTransport(b'"type":"connect"')
        protocol.connection_made(transport)
        protocol.data_received(
            f"GET /ws?user_id={user} HTTP/1.1\r\nhost: bench\r\nupgrade: websocket\r\n"
            "connection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "sec-websocket-version: 13\r\n\r\n".encode()
        )
        await transport.until(1)
        transport.marker, transport.seen = marker, 0
        self.protocols.append(protocol)
        return protocol, transport

    async def stop(self) -> None:
        for protocol in self.protocols:
            protocol.transport.close()
            protocol.connection_lost(None)
        await asyncio.sleep(0.2)  # the disconnects reach the store before it stops
        await self.lifespan.shutdown()


async def run(redis_url: str, messages: int, senders: int) -> int:
    """``senders`` connections on A each send one direct message to bob on B per round, as
    crossnode.py's senders do; a round ends when bob got them all and every sender its ack."""
    node_a, node_b = Node(redis_url), Node(redis_url)
    await node_b.start()
    await node_a.start()
    _, bob = await node_b.connect("bob", b'"type":"direct"')
    alices = [await node_a.connect(f"alice-{index}", b'"type":"ack"') for index in range(senders)]
    frame = masked_text_frame(b'{"type":"direct","to":"bob","text":"1234567890123456789"}')
    warm_up = 2  # rounds: scripts loaded, connections open
    rounds = warm_up + messages // senders
    for round_ in range(1, rounds + 1):
        for protocol, _ in alices:
            protocol.data_received(frame)
        await bob.until(round_ * senders)
        for _, transport in alices:
            await transport.until(round_)
    await node_a.stop()
    await node_b.stop()
    return (rounds - warm_up) * senders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="a multiple of --senders")
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    import uvloop

    with private_redis() as url:
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            delivered = uvloop.run(run(url, args.messages, args.senders))
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
        else:
            delivered = uvloop.run(run(url, args.messages, args.senders))
    print(f"{delivered} messages delivered across nodes")


if __name__ == "__main__":
    main()
