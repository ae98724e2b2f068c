"""A client that stops reading never blocks the others, and the server's memory stays bounded.

Against the real ``netrun-ws run``: 500 reading clients get broadcasts (``POST /api/publish``)
while one raw-socket client with a tiny receive buffer never reads. Its path is first filled with
direct messages, so every broadcast meets a blocked writer and a full queue. Every broadcast must
still reach all 500 clients, round after round, with and without it. How much a stalled client
costs the others in throughput is a speed figure: the benchmark measures it against its target
(bench/, "a stalled receiver costs the others < 10%"), not this test, whose timings on a shared
machine vary more than that.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from netrun_ws.codes import CloseCode
from tests.support.cli_server import RunningServer, run_cli
from tests.support.raw_ws import RawWebSocket

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "backpressure-test-key-0123456789"
READERS = 500
SEND_QUEUE = 256
#: Direct messages pushed at the stalled client: 4 KB each, far more than queue + buffers hold.
PUMP_MESSAGES = 12000
PUMP_TEXT = "x" * 4000
FRAME_BYTES = len(PUMP_TEXT) + 50
BROADCASTS = 60
ROUNDS = 4
BROADCAST_TEXT = "b" * 2000
#: The kernel's loopback socket buffers in front of a stalled client hold well under this
#: (they are not part of the server's RSS).
KERNEL_BUFFERED_BYTES = 8 << 20
#: asyncio's write buffer: uvicorn waits below its 64 KiB high-water mark plus one frame.
TRANSPORT_BYTES = 64 << 10
#: Allocator slack: far below what an unbounded queue would hold after the pump.
RSS_MARGIN = 8 << 20


def server_config(overflow: str) -> dict[str, Any]:
    return {
        "server": {"path": "/ws", "allowed_origins": [], "api_key": API_KEY},
        "limits": {
            "send_queue": SEND_QUEUE,
            "overflow": overflow,
            "messages_per_second": 0,  # the pump client sends thousands of messages at once
            "max_connections_per_ip": 2000,
        },
        "auth": {"plugin": "anonymous"},
        "store": {"plugin": "memory"},
        "heartbeat": None,
        "protocol": {"plugin": "json"},
        "metrics": [{"plugin": "json", "path": "/metrics.json"}],
        "plugins_dir": str(ROOT / "plugins"),
        "plugins": ["chat"],
    }


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc status")


class Cluster:
    """The server, its HTTP API, the readers and a pump client."""

    def __init__(self, server: RunningServer, http: httpx.AsyncClient) -> None:
        self.server = server
        self.http = http
        self.readers: list[ClientConnection] = []
        self.pump: ClientConnection | None = None

    async def stats(self) -> dict[str, Any]:
        response = await self.http.get("/metrics.json")
        connections: dict[str, Any] = response.json()["connections"]
        return connections

    async def broadcast(self, data: dict[str, Any]) -> int:
        response = await self.http.post(
            "/api/publish",
            json={"broadcast": True, "data": data, "exclude_users": ["pump"]},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        assert response.status_code == 200, response.text
        local: int = response.json()["local"]
        return local

    async def delivery_rate(self, run: str) -> float:
        """Deliveries per second to the readers: BROADCASTS messages each, all concurrently."""
        loop = asyncio.get_running_loop()

        async def read_all(client: ClientConnection) -> None:
            seen = 0
            while seen < BROADCASTS:
                message = json.loads(await client.recv())
                if message.get("run") == run:
                    seen += 1

        readers = [asyncio.ensure_future(read_all(client)) for client in self.readers]
        started = loop.time()
        for index in range(BROADCASTS):
            await self.broadcast({"type": "news", "run": run, "n": index, "text": BROADCAST_TEXT})
        await asyncio.wait_for(asyncio.gather(*readers), 30)
        return len(self.readers) * BROADCASTS / (loop.time() - started)

    async def pump_to(self, user: str, count: int) -> None:
        """Send ``count`` direct messages to ``user`` through the chat plugin, reading the acks."""
        assert self.pump is not None
        frame = json.dumps({"type": "direct", "to": user, "text": PUMP_TEXT})
        for start in range(0, count, 500):
            batch = min(500, count - start)
            for _ in range(batch):
                await self.pump.send(frame)
            for _ in range(batch):
                ack = json.loads(await asyncio.wait_for(self.pump.recv(), 10))
                assert ack["type"] == "ack" and ack["delivered"] in (0, 1), ack


async def open_client(addr: str, user: str) -> ClientConnection:
    client = await connect(
        f"ws://{addr}/ws?user_id={user}", ping_interval=None, max_queue=BROADCASTS * 2
    )
    welcome = json.loads(await asyncio.wait_for(client.recv(), 10))
    assert welcome["type"] == "connect"
    return client


@asynccontextmanager
async def cluster(tmp_path: Path, overflow: str, readers: int) -> AsyncIterator[Cluster]:
    config = tmp_path / f"{overflow}.yaml"
    config.write_text(json.dumps(server_config(overflow)))
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(run_cli(config, env={"PYTHONUNBUFFERED": "1"}))
        http = await stack.enter_async_context(
            # No kept-alive connection: uvicorn closes one idle for 5 s (the pump can take that
            # long), and a request sent as it closes fails with "Server disconnected".
            httpx.AsyncClient(
                base_url=f"http://{server.addr}",
                timeout=10,
                limits=httpx.Limits(max_keepalive_connections=0),
            )
        )
        running = Cluster(server, http)
        try:
            for start in range(0, readers, 50):
                batch = range(start, min(start + 50, readers))
                running.readers += await asyncio.gather(
                    *(open_client(server.addr, f"reader-{i}") for i in batch)
                )
            running.pump = await open_client(server.addr, "pump")
            yield running
        finally:
            await asyncio.gather(
                *(client.close() for client in [*running.readers, running.pump] if client),
                return_exceptions=True,
            )
        assert "Traceback" not in server.text(), server.text()[-3000:]


async def open_stalled(addr: str, user: str) -> RawWebSocket:
    """A client with a tiny receive buffer; after the handshake it never reads again."""
    stalled = await RawWebSocket.connect(
        addr, f"/ws?user_id={user}", recv_buffer=4096, read_limit=4096
    )
    return stalled


async def fill_stalled(running: Cluster, user: str, messages: int) -> RawWebSocket:
    """A stalled client whose queue is full: the pump pushed more than its buffers hold."""
    stalled = await open_stalled(running.server.addr, user)
    before = (await running.stats())["dropped_messages"]
    await running.pump_to(user, messages)
    stats = await running.stats()
    assert stats["total_connections"] == READERS + 2  # drop_oldest keeps it connected
    assert stats["queued_frames"] >= SEND_QUEUE  # its writer is blocked and its queue full
    dropped = stats["dropped_messages"] - before
    # What its queue and the socket buffers could not take was dropped, and counted.
    assert dropped >= messages - SEND_QUEUE - KERNEL_BUFFERED_BYTES // FRAME_BYTES, dropped
    return stalled


@pytest.mark.timeout(90)
async def test_a_stalled_reader_does_not_block_500_others_and_memory_stays_bounded(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, "drop_oldest", READERS) as running:
        pid = running.server.process.pid
        await running.delivery_rate("warm-up")
        rss_before = rss_bytes(pid)
        stalled = await fill_stalled(running, "stalled-big", PUMP_MESSAGES)
        growth = rss_bytes(pid) - rss_before
        before = (await running.stats())["dropped_messages"]
        await running.delivery_rate("counted")
        # Each broadcast met the full queue: one more drop each.
        assert (await running.stats())["dropped_messages"] - before == BROADCASTS
        stalled.abort()

        without: list[float] = []
        with_stalled: list[float] = []
        gc.collect()
        gc.disable()  # keep the test process's collector out of the timings
        try:
            for round_ in range(ROUNDS):
                without.append(await running.delivery_rate(f"without-{round_}"))
                stalled = await fill_stalled(running, f"stalled-{round_}", PUMP_MESSAGES // 8)
                with_stalled.append(await running.delivery_rate(f"with-{round_}"))
                stalled.abort()
        finally:
            gc.enable()

    # delivery_rate returns only once all 500 readers had every broadcast of the round (else it
    # times out): a stalled client did not block them. The rates are printed for information.
    assert len(with_stalled) == len(without) == ROUNDS
    print(f"deliveries/s without a stalled client {without}, with one {with_stalled}")
    bound = SEND_QUEUE * FRAME_BYTES + TRANSPORT_BYTES + FRAME_BYTES + RSS_MARGIN
    pushed = PUMP_MESSAGES * FRAME_BYTES
    assert pushed - KERNEL_BUFFERED_BYTES > 4 * bound  # an unbounded queue would show
    print(
        f"server RSS growth {growth / 1e6:.1f} MB, bound {bound / 1e6:.1f} MB, "
        f"pushed at the stalled client {pushed / 1e6:.1f} MB"
    )
    assert growth <= bound, (growth, bound)


@pytest.mark.timeout(60)
async def test_overflow_disconnect_closes_the_stalled_client_with_4101(tmp_path: Path) -> None:
    async with cluster(tmp_path, "disconnect", 20) as running:
        stalled = await open_stalled(running.server.addr, "stalled")
        await running.pump_to("stalled", PUMP_MESSAGES // 4)
        stats = await running.stats()
        assert stats["slow_consumer_disconnects"] == 1
        assert stats["total_connections"] == 20 + 1  # the readers and the pump remain
        # Reading again (within the manager's 5 s close timeout) drains what was buffered,
        # then the close frame.
        closed = await stalled.expect_close(timeout=15)
        stalled.abort()
        assert closed.code == CloseCode.SLOW_CONSUMER, closed
        assert await running.delivery_rate("after") > 0  # the others still get everything
