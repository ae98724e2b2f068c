"""Frame floods (issue 15, points 5 and 6): one connection's frames cannot starve the others,
and what the server writes for it stays bounded when it does not read.

- Every frame (pings, pongs, empty continuation fragments, data) counts against the
  connection's budget, ``limits.frames_per_second``, under every way of serving: netrun-ws's
  protocol counts the frames it parses; in front of uvicorn's own (``ws_protocol: uvicorn``, the
  fence's fallback) netrun_ws.transport.frames counts them. Over the budget the server stops
  reading from the connection until it refills, so an unpaced flood is served at the budget's
  pace, not at the speed of the CPU.
- A client that floods pings and never reads the pongs fills its own TCP window: reading from it
  is held while its write buffer is over the high-water mark (every way of serving).
- Meanwhile a well-behaved client's echoes come back promptly (a generous functional bound,
  not a speed target).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
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


#: The floods, each a batch of frames: nine of the kind, then a ping, whose pong tells how many
#: of the batch's frames the server has read (a flood of pings: all of them pings).
PING = encode_frame(Opcode.PING, b"")
KINDS = {
    "pings": PING,
    "pongs": encode_frame(Opcode.PONG, b""),
    "empty fragments": encode_frame(Opcode.CONTINUATION, b"", fin=False),
    "tiny text frames": encode_frame(Opcode.TEXT, b'{"type":"echo","seq":1}'),
}
PER_PING = 10


def flood_batch(kind: str) -> bytes:
    frame = KINDS[kind]
    return (frame * (PER_PING - 1) + PING) * 100


class ServerFrames:
    """The frames the server sends a raw client, read until ``stop`` and counted by opcode."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        buffer = self._buffer
        buffer.extend(data)
        pos = 0
        while len(buffer) - pos >= 2:
            length, start = buffer[pos + 1] & 0x7F, pos + 2
            if length == 126:
                length, start = int.from_bytes(buffer[pos + 2 : pos + 4]), pos + 4
            elif length == 127:
                length, start = int.from_bytes(buffer[pos + 2 : pos + 10]), pos + 10
            if start + length > len(buffer):
                break
            opcode = buffer[pos] & 0x0F
            self.counts[opcode] = self.counts.get(opcode, 0) + 1
            pos = start + length
        del buffer[:pos]

    async def read(self, client: RawWebSocket, stop: asyncio.Event) -> None:
        with contextlib.suppress(ConnectionError):
            while not stop.is_set():
                try:
                    chunk = await asyncio.wait_for(client.reader.read(1 << 16), 0.2)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                self.feed(chunk)


@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_flood_is_served_at_the_budgets_pace_and_others_are_unaffected(
    served: str, kind: str, request: pytest.FixtureRequest
) -> None:
    app = create_app(config(served))
    async with serve(app) as addr, flooder_and_bystander(addr) as (flooder, bystander):
        if kind == "empty fragments":  # after a non-final text frame: a message never finished
            await flooder.send_frame(Opcode.TEXT, b"{", fin=False)
        stop = asyncio.Event()
        frames = ServerFrames()
        reading = asyncio.create_task(frames.read(flooder, stop))
        trips = asyncio.create_task(round_trips(bystander, stop))
        started = time.monotonic()
        sent = await flood(flooder, flood_batch(kind), FLOOD_SECONDS)
        stop.set()
        assert max(await trips) < ROUND_TRIP
        await reading
        seconds = time.monotonic() - started  # the flood, and the last pongs read after it
    # Frames the server read: ten for each pong (one, in a flood of pings). The budget allows
    # one second's worth at once, then its rate; netrun-ws's protocol may read one parsed slice
    # beyond it. Unpaced, the server would read hundreds of thousands.
    read = frames.counts.get(Opcode.PONG, 0) * (1 if kind == "pings" else PER_PING)
    group = len(KINDS[kind]) * (PER_PING - 1) + len(PING)  # the bytes of ten frames
    own_protocol = request.node.callspec.params["served"] == "netrun"
    slice_beyond = PARSE_SLICE * PER_PING // group if own_protocol else 0
    most = FRAMES_PER_SECOND * (1 + seconds) + slice_beyond + PER_PING
    assert sent > 0
    assert read <= most, (read, most)
    # ... and the flooder is paced, not shut out: it gets about its budget.
    assert read >= FRAMES_PER_SECOND * FLOOD_SECONDS / 2, read
    if kind == "tiny text frames":  # each one an echo
        assert frames.counts.get(Opcode.TEXT, 0) >= read * 0.9 * (PER_PING - 1) / PER_PING


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


async def test_a_burst_within_the_budget_is_read_at_once(
    served: str, request: pytest.FixtureRequest
) -> None:
    # The budget allows a second's worth at once: a client's burst is not slowed.
    app = create_app(config(served))
    async with serve(app) as addr, flooder_and_bystander(addr) as (flooder, _):
        await flooder.send_raw(ping_batch(FRAMES_PER_SECOND // 2))
        stop = asyncio.Event()
        pongs = asyncio.create_task(count_pongs(flooder, stop))
        await asyncio.sleep(0.5)
        stop.set()
        assert await pongs == FRAMES_PER_SECOND // 2
        if request.node.callspec.params["served"] == "netrun":
            assert not only_connection_named(app, "flood").throttled


def upgraded_transports() -> list[GuardedTransport]:
    """The transports of the upgraded connections. (isinstance trips on weak proxies.)"""
    return [
        o
        for o in gc.get_objects()
        if type(o) is GuardedTransport and o._guard is None and not o.is_closing()
    ]


@pytest.mark.parametrize("budgeted", [True, False])
async def test_only_protocols_that_count_no_frames_get_a_frame_budget_in_front(
    served: str, budgeted: bool, request: pytest.FixtureRequest
) -> None:
    # netrun-ws's protocol counts its own frames: its reads go to it straight from the socket.
    app = create_app(config(served, frames_per_second=FRAMES_PER_SECOND if budgeted else 0))
    async with serve(app) as addr, flooder_and_bystander(addr) as (_, bystander):
        await bystander.send('{"type": "echo", "seq": 1}')
        assert (await recv_json(bystander))["seq"] == 1
        transports = upgraded_transports()
        assert len(transports) == 2
        # netrun-ws's own protocol serves "netrun" (and not "netrun-fallback")
        by_budget = budgeted and request.node.callspec.params["served"] != "netrun"
        for transport in transports:
            budget = transport._frame_budget()
            assert (budget is not None) is by_budget
            real_protocol = transport.transport.get_protocol()
            if budget is None:
                assert real_protocol is transport.get_protocol()
            else:
                assert real_protocol is budget
                inner: object = budget.inner  # (a protocol type mypy sees as no BaseProtocol)
                assert transport.get_protocol() is inner


def only_connection_named(app: Any, user: str) -> Any:
    return next(c.direct for c in app.state.host.manager.connections() if c.user_id == user)


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
        # Until its pongs back up past the kernel's buffers (up to 4 MB on loopback) and
        # reading from it is held.
        deadline = time.monotonic() + 30
        while most_buffered_now() <= WRITE_HIGH_WATER:
            assert time.monotonic() < deadline, "the pongs never backed up"
            await flood(flooder, BIG_PINGS, 0.5)
        received = bytearray()

        async def read_until_the_echo() -> None:
            while b'"seq":9' not in received.replace(b" ", b""):
                chunk = await flooder.reader.read(1 << 16)
                assert chunk, "closed"
                received.extend(chunk)

        reading = asyncio.create_task(read_until_the_echo())
        await flooder.send_frame(Opcode.TEXT, b'{"type": "echo", "seq": 9}')
        await asyncio.wait_for(reading, 20)


@pytest.mark.parametrize("text", ["", "z" * 4000], ids=["tiny", "4000 bytes"])
async def test_past_the_budget_while_the_app_is_behind_nothing_is_lost(
    served: str, text: str
) -> None:
    # Two holds at once: the protocol's own (the app does not take its messages) and the
    # budget's (600 frames in one write, 400 allowed at once; 2.4 MB of them, read in many
    # reads and cut mid-frame, with 4,000-byte texts). Once the app catches up, every message
    # is answered, in order.
    app = create_app(config(served))
    plugin = app.state.host.plugin_manager.get_plugin(ECHO)
    count = 600
    async with serve(app) as addr, flooder_and_bystander(addr) as (client, _):
        plugin.hold.clear()
        await client.send_raw(
            b"".join(
                encode_frame(
                    Opcode.TEXT, b'{"type":"echo","seq":%d,"text":"%s"}' % (seq, text.encode())
                )
                for seq in range(count)
            )
        )
        await asyncio.sleep(1.2)  # the budget refills while the app is behind
        plugin.hold.set()
        seqs = [json.loads((await client.read_frame(timeout=10)).text)["seq"] for _ in range(count)]
        assert seqs == list(range(count))
        # ... and reading resumed: the next message is read and answered.
        await client.send_frame(Opcode.TEXT, b'{"type":"echo","seq":-1}')
        assert json.loads((await client.read_frame(timeout=10)).text)["seq"] == -1
