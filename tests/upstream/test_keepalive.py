"""Keepalive pings: netrun-ws's protocol arms them on the loop's shared timer heap
(:mod:`netrun_ws.timers`) where uvicorn's arms a loop timer each; on the wire both do the same,
at the same times (virtual time: tests.support.virtual_time).

The client answers the first pings and then stops: both protocols ping every interval (less
the measured round trip), then fail the connection with 1011 once a ping goes unanswered for
``ws_ping_timeout`` seconds; a connection closed meanwhile is pinged no more.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from netrun_ws._upstream.uvicorn import WebSocketsSansIOProtocol
from netrun_ws.timers import timers_for
from netrun_ws.transport.websocket import NetrunWebSocketProtocol
from tests.support.raw_ws import Opcode, close_payload, encode_frame
from tests.support.upgrade import UPGRADE
from tests.support.virtual_time import run_in_virtual_time

INTERVAL, TIMEOUT = 5.0, 3.0


class Recorder(asyncio.Transport):
    """Records when each frame the server writes leaves (the first byte's opcode)."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[tuple[float, int, bytes]] = []
        self.closed_at: float | None = None

    def write(self, data: Any) -> None:
        data = bytes(data)
        if data.startswith(b"HTTP/1.1"):
            return
        loop = asyncio.get_running_loop()
        # Server frames are unmasked and short here: opcode, length, payload.
        self.frames.append((loop.time(), data[0] & 0x0F, data[2 : 2 + (data[1] & 0x7F)]))

    def is_closing(self) -> bool:
        return self.closed_at is not None

    def close(self) -> None:
        if self.closed_at is None:
            self.closed_at = asyncio.get_running_loop().time()

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 4000) if name in ("sockname", "peername") else default


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


def _timeline(kind: type[WebSocketsSansIOProtocol], answers: int, close_at: float | None) -> Any:
    async def scenario() -> Any:
        loop = asyncio.get_running_loop()
        config = uvicorn.Config(
            _app,
            ws=kind,
            lifespan="off",
            ws_ping_interval=INTERVAL,
            ws_ping_timeout=TIMEOUT,
            ws_per_message_deflate=False,
        )
        config.load()
        protocol = kind(config, ServerState(), {})
        recorder = Recorder()
        protocol.connection_made(recorder)
        protocol.data_received(UPGRADE + b"\r\n")
        answered, closing = 0, close_at
        while loop.time() < 60 and recorder.closed_at is None:
            if closing is not None and loop.time() >= closing:
                protocol.data_received(encode_frame(Opcode.CLOSE, close_payload(1000, "")))
                closing = None
            pings = [frame for frame in recorder.frames if frame[1] == Opcode.PING]
            if len(pings) > answered and answered < answers:
                await asyncio.sleep(0.25)  # the round trip
                protocol.data_received(encode_frame(Opcode.PONG, pings[answered][2]))
                answered += 1
            await asyncio.sleep(0.05)
        protocol.connection_lost(None)
        await asyncio.sleep(0)
        frames = [(round(at, 2), opcode) for at, opcode, _payload in recorder.frames]
        return frames, recorder.closed_at and round(recorder.closed_at, 2)

    return run_in_virtual_time(scenario)


@pytest.mark.parametrize(("answers", "close_at"), [(2, None), (0, None), (1, 7.0)])
def test_pings_and_the_ping_timeout_match_uvicorns(answers: int, close_at: float | None) -> None:
    ours = _timeline(NetrunWebSocketProtocol, answers, close_at)
    theirs = _timeline(WebSocketsSansIOProtocol, answers, close_at)
    assert ours == theirs
    frames, closed_at = ours
    assert [opcode for _at, opcode in frames].count(Opcode.PING) == (
        answers + 1 if close_at is None else 1
    )
    assert closed_at is not None


def test_the_protocol_keeps_no_loop_timer_of_its_own_while_idle() -> None:
    async def scenario() -> None:
        config = uvicorn.Config(_app, lifespan="off", ws_ping_interval=INTERVAL)
        config.load()
        protocol = NetrunWebSocketProtocol(config, ServerState(), {})
        protocol.connection_made(Recorder())
        protocol.data_received(UPGRADE + b"\r\n")
        for _turn in range(10):
            await asyncio.sleep(0)
        timers = timers_for(asyncio.get_running_loop())
        assert protocol.ping_timer is not None and not isinstance(
            protocol.ping_timer, asyncio.TimerHandle
        )
        assert len(timers) == 1
        protocol.connection_lost(None)
        assert len(timers) == 0  # cancelled with the connection
        await asyncio.sleep(0)

    run_in_virtual_time(scenario)
