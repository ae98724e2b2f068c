"""Frame floods (issue 15, points 5 and 6): one connection's frames cannot starve the others,
and what the server writes for it stays bounded when it does not read.

- Every frame (pings, pongs, empty continuation fragments, data) counts against the
  connection's budget, ``limits.frames_per_second``: under ``server.ws_protocol: netrun`` the
  server stops reading from a connection over it until it refills, so an unpaced flood is
  answered at the budget's pace, not at the speed of the CPU.
- A client that floods pings and never reads the pongs fills its own TCP window: reading from it
  is held while its write buffer is over the high-water mark (every way of serving).
- Meanwhile a well-behaved client's echoes come back promptly (a generous functional bound,
  not a speed target).

Under uvicorn's own protocols (``ws_protocol: uvicorn`` or the fence's fallback) frames are not
counted (docs/security.md says so): those tests check the bounds that do hold there.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from netrun_ws import create_app
from netrun_ws.transport.guard import GuardedTransport
from netrun_ws.transport.websocket import PARSE_SLICE
from tests.host.helpers import ECHO, base_config, recv_json
from tests.support.raw_ws import Opcode, RawWebSocket, encode_frame
from tests.support.server import serve

pytestmark = pytest.mark.timeout(120)

FRAMES_PER_SECOND = 400
FLOOD_SECONDS = 3.0
#: A generous functional bound on a well-behaved client's echo round trip during a flood.
ROUND_TRIP = 1.0


def config(ws_protocol: str, frames_per_second: float = FRAMES_PER_SECOND) -> dict[str, Any]:
    return base_config(
        server={"path": "/ws", "ws_protocol": ws_protocol},
        limits={"messages_per_second": 0, "frames_per_second": frames_per_second},
        plugins=[ECHO],
    )


def ping_batch(count: int, payload: bytes = b"") -> bytes:
    return b"".join(encode_frame(Opcode.PING, payload) for _ in range(count))


#: After a non-final text frame, empty continuation frames that never finish the message.
EMPTY_FRAGMENTS = b"".join(encode_frame(Opcode.CONTINUATION, b"", fin=False) for _ in range(2000))


async def flood(client: RawWebSocket, batch: bytes, seconds: float) -> int:
    """Send ``batch`` again and again for ``seconds`` (as fast as the server takes it);
    returns how many batches went out."""
    sent = 0
    deadline = time.monotonic() + seconds
    with contextlib.suppress(ConnectionError, TimeoutError):
        while time.monotonic() < deadline:
            client.writer.write(batch)
            await asyncio.wait_for(client.writer.drain(), max(0.01, deadline - time.monotonic()))
            sent += 1
    return sent


async def count_pongs(client: RawWebSocket, stop: asyncio.Event) -> int:
    """Read until ``stop``; how many pongs to empty pings came back (2 bytes each, the only
    frames the server sends this client after its welcome). Counted in bytes: a frame at a time
    would count the test's own pace."""
    received = 0
    with contextlib.suppress(ConnectionError):
        while not stop.is_set():
            try:
                received += len(await asyncio.wait_for(client.reader.read(1 << 16), 0.2))
            except TimeoutError:
                continue
    return received // 2


async def round_trips(client: ClientConnection, stop: asyncio.Event) -> list[float]:
    """Echo round trips, one every 50 ms until ``stop``."""
    times = []
    seq = 0
    while not stop.is_set():
        seq += 1
        started = time.monotonic()
        await client.send(f'{{"type": "echo", "seq": {seq}}}')
        assert (await recv_json(client, timeout=10))["seq"] == seq
        times.append(time.monotonic() - started)
        await asyncio.sleep(0.05)
    return times


@contextlib.asynccontextmanager
async def flooder_and_bystander(
    addr: str, **raw: Any
) -> AsyncIterator[tuple[RawWebSocket, ClientConnection]]:
    flooder = await RawWebSocket.connect(addr, "/ws?user_id=flood", **raw)
    await flooder.read_text()  # the welcome
    async with connect(f"ws://{addr}/ws?user_id=fine") as bystander:
        assert (await recv_json(bystander))["type"] == "connect"
        try:
            yield flooder, bystander
        finally:
            flooder.abort()


async def test_a_ping_flood_is_answered_at_the_budgets_pace_and_others_are_unaffected() -> None:
    app = create_app(config("netrun"))
    async with serve(app) as addr, flooder_and_bystander(addr) as (flooder, bystander):
        stop = asyncio.Event()
        pongs = asyncio.create_task(count_pongs(flooder, stop))
        trips = asyncio.create_task(round_trips(bystander, stop))
        await flood(flooder, ping_batch(1000), FLOOD_SECONDS)
        stop.set()
        assert max(await trips) < ROUND_TRIP
        answered = await pongs
    # The budget (one second's worth at once, then its rate), plus at most one parsed slice of
    # pings beyond it; unpaced, the server would answer hundreds of thousands.
    most = FRAMES_PER_SECOND * (1 + FLOOD_SECONDS) + PARSE_SLICE // 6
    assert 0 < answered <= most


async def test_empty_continuation_fragments_count_and_pause_the_flooder() -> None:
    app = create_app(config("netrun"))
    async with serve(app) as addr, flooder_and_bystander(addr) as (flooder, bystander):
        protocol = only_connection_named(app, "flood")
        await flooder.send_frame(Opcode.TEXT, b"{", fin=False)
        stop = asyncio.Event()
        trips = asyncio.create_task(round_trips(bystander, stop))
        throttled = False

        async def watch() -> None:
            nonlocal throttled
            while not stop.is_set():
                throttled = throttled or (protocol.throttled and protocol.read_paused)
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        await flood(flooder, EMPTY_FRAGMENTS, FLOOD_SECONDS)
        stop.set()
        await watcher
        assert max(await trips) < ROUND_TRIP
        assert throttled
        assert protocol.frame_tokens < 0  # every fragment was counted, none was free


async def test_a_burst_within_the_budget_is_read_at_once() -> None:
    # The budget allows a second's worth at once: a client's burst is not slowed.
    app = create_app(config("netrun"))
    async with serve(app) as addr, flooder_and_bystander(addr) as (flooder, _):
        await flooder.send_raw(ping_batch(FRAMES_PER_SECOND // 2))
        stop = asyncio.Event()
        pongs = asyncio.create_task(count_pongs(flooder, stop))
        await asyncio.sleep(0.5)
        stop.set()
        assert await pongs == FRAMES_PER_SECOND // 2
        assert not only_connection_named(app, "flood").throttled


def only_connection_named(app: Any, user: str) -> Any:
    return next(c.direct for c in app.state.host.manager.connections() if c.user_id == user)


@pytest.mark.parametrize("flood_kind", ["pings", "empty fragments"])
@pytest.mark.parametrize("served", ["uvicorn", "netrun-fallback"], indirect=True)
async def test_under_uvicorns_own_protocols_others_are_still_served(
    served: str, flood_kind: str
) -> None:
    # uvicorn's own protocols count no frames (docs/security.md): the flooder is not paced
    # there, but one flooding connection must still not hold up the others' replies.
    app = create_app(config(served))
    async with serve(app) as addr, flooder_and_bystander(addr) as (flooder, bystander):
        stop = asyncio.Event()
        pongs = asyncio.create_task(count_pongs(flooder, stop))
        trips = asyncio.create_task(round_trips(bystander, stop))
        if flood_kind == "pings":
            sent = await flood(flooder, ping_batch(1000), FLOOD_SECONDS)
        else:
            await flooder.send_frame(Opcode.TEXT, b"{", fin=False)
            sent = await flood(flooder, EMPTY_FRAGMENTS, FLOOD_SECONDS)
        stop.set()
        assert max(await trips) < ROUND_TRIP
        await pongs
    assert sent > 0


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


#: Pongs of 125-byte pings: each ping in flight makes 127 bytes to write.
BIG_PINGS = ping_batch(500, b"p" * 125)


async def test_pongs_to_a_client_that_never_reads_stay_bounded(served: str) -> None:
    # No frame budget: the write buffer alone must bound it (the budget would pace it first).
    app = create_app(config(served, frames_per_second=0))
    async with (
        serve(app) as addr,
        flooder_and_bystander(addr, recv_buffer=4096) as (flooder, bystander),
    ):
        before = rss_bytes()
        stop = asyncio.Event()
        trips = asyncio.create_task(round_trips(bystander, stop))
        buffered = asyncio.create_task(most_buffered(stop))
        sent = await flood(flooder, BIG_PINGS, FLOOD_SECONDS)
        stop.set()
        assert max(await trips) < ROUND_TRIP
        most = await buffered
        grown = rss_bytes() - before
    # Unbounded, the server would hold a pong for each ping it read: tens of MB in 3 s. Held,
    # it writes up to the high-water mark plus the pongs of what one read brought in.
    assert sent > 0
    assert 0 < most <= WRITE_HIGH_WATER + (256 << 10), most
    assert grown < 16 << 20, f"RSS grew {grown >> 20} MB"


#: asyncio's default high-water mark of a transport's write buffer.
WRITE_HIGH_WATER = 64 << 10


def most_buffered_now() -> int:
    return max(
        (o.get_write_buffer_size() for o in gc.get_objects() if type(o) is GuardedTransport),
        default=0,
    )


async def most_buffered(stop: asyncio.Event) -> int:
    """The most bytes any upgraded connection's transport had waiting to be written, sampled
    until ``stop``."""
    most = 0
    while not stop.is_set():
        for transport in gc.get_objects():
            if type(transport) is GuardedTransport:  # (isinstance trips on weak proxies)
                most = max(most, transport.get_write_buffer_size())
        await asyncio.sleep(0.2)
    return most


async def test_once_the_client_reads_again_reading_from_it_resumes(served: str) -> None:
    app = create_app(config(served, frames_per_second=0))
    raw = {"recv_buffer": 1 << 16}
    async with serve(app) as addr, flooder_and_bystander(addr, **raw) as (flooder, _):
        await flood(flooder, BIG_PINGS, 0.5)  # held: its pongs back up
        assert most_buffered_now() > WRITE_HIGH_WATER
        received = bytearray()

        async def read_until_the_echo() -> None:
            while b'"seq":9' not in received.replace(b" ", b""):
                chunk = await flooder.reader.read(1 << 16)
                assert chunk, "closed"
                received.extend(chunk)

        reading = asyncio.create_task(read_until_the_echo())
        await flooder.send_frame(Opcode.TEXT, b'{"type": "echo", "seq": 9}')
        await asyncio.wait_for(reading, 20)
