"""The connection guard's reasons to hold reading from a client, each independent of the others
(netrun_ws.transport.guard, netrun_ws.transport.frames): the frame budget, writes backed up, and
the websocket protocol's own ``pause_reading``. Reading resumes only when none holds it, and a
read cut by the budget is handed on whole and in order.

A real asyncio server on loopback with a real client socket; in place of uvicorn's HTTP and
websocket protocols, two minimal ones (the guard knows protocols only by asyncio's interface):
the first hands the connection over at its first byte, as an upgrade does, to one that records
what it receives. Under asyncio's event loop and uvloop (which ``netrun-ws run`` serves on when
it is installed): the guard relies on both transports' pause and resume being no-ops when
already so.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvloop

from netrun_ws.transport.guard import GuardedProtocol, GuardedTransport
from netrun_ws.transport.pending import PendingRequests, RequestLimits
from tests.support.raw_ws import Opcode, encode_frame

pytestmark = pytest.mark.timeout(60)

#: Each test runs its own event loop, of each kind.
RUNNERS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


RATE = 10  # frames per second: a burst of 10, then one every 100 ms
PING = encode_frame(Opcode.PING, b"")
#: Bytes written to a client that does not read: more than the kernel's buffers on loopback hold.
BACKED_UP = 32 << 20


class Recorder(asyncio.Protocol):
    """The websocket protocol's place: keeps what it receives."""

    def __init__(self, transport: GuardedTransport) -> None:
        self.transport = transport
        self.received = bytearray()
        self.counts_frames = False

    def data_received(self, data: bytes) -> None:
        self.received.extend(data)


class Upgrading(asyncio.Protocol):
    """The HTTP protocol's place: its first read "upgrades" to a :class:`Recorder`."""

    upgraded: list[Recorder]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, GuardedTransport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        recorder = Recorder(self.transport)
        self.upgraded.append(recorder)
        self.transport.set_protocol(recorder)


@asynccontextmanager
async def guarded_server(rate: float) -> AsyncIterator[tuple[socket.socket, Recorder]]:
    """A client socket connected to a guarded server, upgraded; and the server's recorder."""
    upgraded: list[Recorder] = []
    guard = type(
        "Guarded",
        (GuardedProtocol,),
        {
            "__slots__": (),
            "inner_class": type("Inner", (Upgrading,), {"upgraded": upgraded}),
            "pending": PendingRequests(RequestLimits(frames_per_second=rate)),
        },
    )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(guard, "127.0.0.1", 0)
    client = socket.create_connection(server.sockets[0].getsockname()[:2])
    client.setblocking(False)
    try:
        client.send(b"U")
        await until(lambda: bool(upgraded))
        yield client, upgraded[0]
    finally:
        client.close()
        server.close()
        await server.wait_closed()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def reading(recorder: Recorder) -> bool:
    """Whether the socket's own transport is reading."""
    real: Any = recorder.transport.transport
    return bool(real.is_reading())


@pytest.mark.parametrize("loop", list(RUNNERS))
def test_a_read_past_the_budget_waits_and_reading_is_held_until_it_refills(loop: str) -> None:
    RUNNERS[loop](_a_read_past_the_budget_waits_and_reading_is_held_until_it_refills())


async def _a_read_past_the_budget_waits_and_reading_is_held_until_it_refills() -> None:
    async with guarded_server(RATE) as (client, recorder):
        client.send(PING * 15)
        await until(lambda: len(recorder.received) >= 10 * len(PING))
        started = time.monotonic()
        assert bytes(recorder.received) == PING * 10  # the burst, cut at a frame boundary
        assert not reading(recorder)
        await until(lambda: len(recorder.received) == 15 * len(PING))
        # The five others came at the budget's pace (one per 100 ms), whole and in order.
        assert time.monotonic() - started >= 0.35
        assert bytes(recorder.received) == PING * 15
        await until(lambda: reading(recorder))


@pytest.mark.parametrize("loop", list(RUNNERS))
def test_reading_resumes_only_when_no_reason_holds_it(loop: str) -> None:
    RUNNERS[loop](_reading_resumes_only_when_no_reason_holds_it())


async def _reading_resumes_only_when_no_reason_holds_it() -> None:
    async with guarded_server(RATE) as (client, recorder):
        guarded = recorder.transport
        client.send(PING * 15)  # the budget holds reading after ten
        await until(lambda: len(recorder.received) == 10 * len(PING))
        guarded.pause_reading()  # the protocol's own reason
        guarded.write(b"w" * BACKED_UP)  # the client reads nothing: writes back up
        assert guarded.get_write_buffer_size() > guarded.get_write_buffer_limits()[1]
        assert not reading(recorder)

        await asyncio.sleep(0.7)  # the budget has refilled...
        assert len(recorder.received) == 10 * len(PING)  # ...but the protocol said pause
        assert not reading(recorder)

        guarded.resume_reading()  # the rest of the read is handed on
        assert bytes(recorder.received) == PING * 15
        await asyncio.sleep(0.2)
        assert not reading(recorder)  # writes are still backed up

        await drain(client, BACKED_UP)
        await until(lambda: reading(recorder))  # nothing holds it any more
        client.send(PING * 3)
        await until(lambda: len(recorder.received) == 18 * len(PING))


@pytest.mark.parametrize("loop", list(RUNNERS))
def test_the_protocol_pausing_holds_a_refilled_budget_back(loop: str) -> None:
    RUNNERS[loop](_the_protocol_pausing_holds_a_refilled_budget_back())


async def _the_protocol_pausing_holds_a_refilled_budget_back() -> None:
    async with guarded_server(RATE) as (client, recorder):
        guarded = recorder.transport
        guarded.pause_reading()
        client.send(PING * 30)
        await asyncio.sleep(0.3)
        assert recorder.received == b""  # paused from the start: the socket was not read
        guarded.resume_reading()
        await until(lambda: len(recorder.received) >= 10 * len(PING))
        guarded.pause_reading()
        await asyncio.sleep(1.2)  # a whole second's budget refills meanwhile
        assert len(recorder.received) == 10 * len(PING)
        guarded.resume_reading()  # ten more at once (the burst), then at the budget's pace
        assert len(recorder.received) == 20 * len(PING)
        await until(lambda: len(recorder.received) == 30 * len(PING))
        assert bytes(recorder.received) == PING * 30


async def drain(client: socket.socket, size: int) -> None:
    loop = asyncio.get_running_loop()
    got = 0
    while got < size:
        chunk = await loop.sock_recv(client, 1 << 16)
        assert chunk
        got += len(chunk)
