"""Connections that never finish their request (issue 15, point 4) are bounded from TCP accept,
under every way of serving a websocket (tests/security/transports.py):

- a pending connection gets ``408`` and is closed ``limits.request_timeout`` after accept (or
  after the first byte of a kept-alive connection's next request), whether it sends nothing,
  drips an upgrade request a byte at a time, or stops after the request line;
- one IP holds at most ``limits.max_pending_requests_per_ip`` pending connections: past it, its
  oldest are closed (after a grace of half a second, within which a burst of real clients from
  one IP, such as a proxy's, completes its requests and stays);
- past ``limits.max_pending_requests`` in all, the ones pending longest are closed to make room;
- meanwhile ``/healthz``, the HTTP API and new websocket clients keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from netrun_ws import create_app
from netrun_ws.transport.pending import GRACE
from tests.host.helpers import ECHO, base_config, recv_json
from tests.security.transports import open_from
from tests.support.server import serve

pytestmark = pytest.mark.timeout(90)

TIMEOUT = 2.5
PER_IP = 64
TOTAL = 200
UPGRADE = (
    b"GET /ws?user_id=slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def config(ws_protocol: str, **limits: Any) -> dict[str, Any]:
    return base_config(
        server={"path": "/ws", "ws_protocol": ws_protocol},
        limits={
            "messages_per_second": 0,
            "request_timeout": TIMEOUT,
            "max_pending_requests_per_ip": PER_IP,
            "max_pending_requests": TOTAL,
            **limits,
        },
        plugins=[ECHO],
    )


class Slow:
    """A raw connection that sends its request slowly, or not at all."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.closed_at: float | None = None
        self.answer = b""

    async def watch(self) -> None:
        """Read until the server closes; note when, and what it answered."""
        with contextlib.suppress(ConnectionError):
            while chunk := await self.reader.read(4096):
                self.answer += chunk
        self.closed_at = time.monotonic()

    async def drip(self, data: bytes, interval: float) -> None:
        with contextlib.suppress(ConnectionError):
            for byte in data:
                if self.closed_at is not None:
                    return
                self.writer.write(bytes([byte]))
                await self.writer.drain()
                await asyncio.sleep(interval)


async def open_slow(source_ip: str, addr: str, count: int) -> list[Slow]:
    slow = [Slow(*await open_from(source_ip, addr)) for _ in range(count)]
    return slow


async def echo_round_trip(addr: str, user: str) -> None:
    async with connect(f"ws://{addr}/ws?user_id={user}", open_timeout=5) as client:
        assert (await recv_json(client))["type"] == "connect"
        await client.send('{"type": "echo", "seq": 1}')
        assert (await recv_json(client))["seq"] == 1


async def test_pending_connections_are_closed_after_the_timeout_and_others_are_served(
    served: str,
) -> None:
    async with serve(create_app(config(served))) as addr:
        started = time.monotonic()
        # 300 from one IP: 100 silent, 100 dripping an upgrade, 100 dripping a plain request.
        slow = await open_slow("127.0.0.2", addr, 300)
        watchers = [asyncio.create_task(one.watch()) for one in slow]
        drips = [asyncio.create_task(one.drip(UPGRADE, 0.2)) for one in slow[100:200]] + [
            asyncio.create_task(one.drip(b"GET /healthz HTTP/1.1\r\nHost: x\r\n", 0.2))
            for one in slow[200:]
        ]
        await asyncio.sleep(GRACE + 0.2)
        # Past the IP's limit, the excess was closed, with nothing answered.
        closed_at_once = [one for one in slow if one.closed_at is not None]
        assert len(closed_at_once) >= 300 - PER_IP
        assert all(one.answer == b"" for one in closed_at_once)
        # Meanwhile everybody else is served, again and again.
        async with httpx.AsyncClient(base_url=f"http://{addr}", timeout=5) as http:
            for round_ in range(3):
                assert (await http.get("/healthz")).status_code == 200
                await echo_round_trip(addr, f"fine{round_}")
        held = [one for one in slow if one not in closed_at_once]
        assert held and all(one.closed_at is None for one in held)  # not closed early
        await asyncio.wait_for(asyncio.gather(*watchers), TIMEOUT + 5)
        # Every held one got its 408 after the timeout, and no sooner.
        for one in held:
            assert one.closed_at is not None
            assert one.closed_at - started >= TIMEOUT * 0.9
            assert one.answer.startswith(b"HTTP/1.1 408 "), one.answer[:40]
        for task in drips:
            task.cancel()
        for one in slow:
            one.writer.close()
        # The server is whole again: the same IP gets in now.
        reader, writer = await open_from("127.0.0.2", addr)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(
            b"HTTP/1.1 200"
        )
        writer.close()


async def test_past_the_total_the_longest_pending_make_room(served: str) -> None:
    async with serve(create_app(config(served, max_pending_requests=100))) as addr:
        first = await open_slow("127.0.0.3", addr, PER_IP)
        watchers = [asyncio.create_task(one.watch()) for one in first]
        await asyncio.sleep(0.1)
        second = await open_slow("127.0.0.4", addr, PER_IP)
        watchers += [asyncio.create_task(one.watch()) for one in second]
        await asyncio.sleep(GRACE + 0.2)
        # 128 pending would be over 100: the 28 oldest (the first IP's) made room.
        evicted = [one for one in first if one.closed_at is not None]
        assert len(evicted) == 2 * PER_IP - 100
        assert all(one.closed_at is None for one in second)
        # New clients still get in while the total is full.
        async with httpx.AsyncClient(base_url=f"http://{addr}", timeout=5) as http:
            assert (await http.get("/healthz")).status_code == 200
        await echo_round_trip(addr, "fine")
        await asyncio.wait_for(asyncio.gather(*watchers), TIMEOUT + 5)
        for one in first + second:
            one.writer.close()


async def test_a_kept_alive_connections_next_request_has_its_own_deadline(served: str) -> None:
    async with serve(create_app(config(served))) as addr:
        reader, writer = await open_from("127.0.0.5", addr)
        # One request answered at once, then a second one that never completes.
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        started = time.monotonic()
        writer.write(b"GET /healthz HTTP/1.1\r\n")  # and nothing more
        rest = await asyncio.wait_for(reader.read(), TIMEOUT + 5)
        assert time.monotonic() - started >= TIMEOUT * 0.9
        assert rest.startswith(b"HTTP/1.1 408 ")
        writer.close()


async def test_an_upgrade_completed_in_time_is_not_cut_by_the_request_timeout(served: str) -> None:
    async with serve(create_app(config(served))) as addr:
        async with connect(f"ws://{addr}/ws?user_id=long", open_timeout=5) as client:
            assert (await recv_json(client))["type"] == "connect"
            await asyncio.sleep(TIMEOUT * 1.5)
            await client.send('{"type": "echo", "seq": 7}')
            assert (await recv_json(client))["seq"] == 7


async def test_a_burst_of_real_clients_from_one_ip_past_its_limit_gets_in(served: str) -> None:
    # Pending only until their upgrade is read, real clients complete within the grace.
    app = create_app(config(served, max_connections_per_ip=10 * PER_IP))
    async with serve(app) as addr:
        urls = [f"ws://{addr}/ws?user_id=burst{i}" for i in range(3 * PER_IP)]
        clients = await asyncio.gather(*(connect(url, open_timeout=10) for url in urls))
        try:
            welcomes = await asyncio.gather(*(recv_json(client) for client in clients))
            assert [welcome["type"] for welcome in welcomes] == ["connect"] * len(clients)
        finally:
            await asyncio.gather(*(client.close() for client in clients))
