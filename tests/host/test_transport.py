"""netrun-ws's uvicorn websocket protocol (netrun_ws.transport) over a real server: the direct
channel is used, corked writes keep order, reading pauses while the app is behind, and
``server.ws_protocol: uvicorn`` falls back to uvicorn's own protocol through plain ASGI.

What it relies on in uvicorn and websockets is checked in tests/upstream/.

Not on netrun_ws.testing: it tests the transport itself, with raw frames and protocol internals."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from websockets.asyncio.client import connect

from netrun_ws import create_app
from netrun_ws.transport import websocket as websocket_transport
from netrun_ws.transport.websocket import CORK_LIMIT, READ_LIMIT, NetrunWebSocketProtocol
from tests.host.helpers import (
    ECHO,
    RECORDING,
    echo_burst,
    echo_config,
    only_connection,
    recv_json,
    wait_for,
)
from tests.support.raw_ws import Opcode, RawWebSocket, close_payload, encode_frame
from tests.support.server import serve


@pytest.fixture
def served_ws_protocol() -> None:
    """These tests name the protocol in each app's config: each runs once."""


@pytest.mark.parametrize("ws_protocol", ["netrun", "uvicorn"])
async def test_a_burst_comes_back_complete_and_in_order(ws_protocol: str) -> None:
    app = create_app(echo_config(ws_protocol))
    async with serve(app) as addr:
        replies = await echo_burst(addr, 500, "x" * 50)
    assert [reply["seq"] for reply in replies] == list(range(500))
    expected = [{"type": "echo", "seq": n, "text": "x" * 50} for n in range(500)]
    assert replies == expected


async def test_replies_beyond_the_cork_limit_are_written_at_once_and_in_order() -> None:
    app = create_app(echo_config())
    text = "y" * 8000
    count = 3 * CORK_LIMIT // len(text)
    async with serve(app) as addr:
        replies = await echo_burst(addr, count, text)
    assert [reply["seq"] for reply in replies] == list(range(count))
    assert all(reply["text"] == text for reply in replies)


@pytest.mark.parametrize("ws_protocol", ["netrun", "uvicorn"])
async def test_the_direct_channel_is_offered_only_by_the_netrun_protocol(ws_protocol: str) -> None:
    app = create_app(echo_config(ws_protocol))
    async with serve(app) as addr, connect(f"ws://{addr}/ws?user_id=u") as client:
        await recv_json(client)
        direct = only_connection(app).direct
        if ws_protocol == "netrun":
            assert isinstance(direct, NetrunWebSocketProtocol)
        else:
            assert direct is None
        await client.send(json.dumps({"type": "echo", "seq": 1}))
        assert (await recv_json(client))["seq"] == 1


# 4,000 bytes a message either way, 800 KB in all, far over READ_LIMIT (deflate is off); the
# second is 2,000 characters of two UTF-8 bytes each.
@pytest.mark.parametrize("text", ["z" * 4000, "é" * 2000], ids=["ascii", "two-byte utf-8"])
async def test_reading_pauses_while_the_app_is_behind_and_nothing_is_lost(text: str) -> None:
    app = create_app(echo_config())
    plugin = app.state.host.plugin_manager.get_plugin(ECHO)
    plugin.hold.clear()  # the handler waits: received messages pile up
    count = 200
    async with serve(app) as addr:
        async with connect(f"ws://{addr}/ws?user_id=u") as client:
            assert (await recv_json(client))["type"] == "connect"
            for seq in range(count):
                message = {"type": "echo", "seq": seq, "text": text}
                await client.send(json.dumps(message, ensure_ascii=False))
            direct = only_connection(app).direct
            await wait_for(lambda: direct.read_paused)
            # The socket itself stopped reading: the rest waits in the kernel, not in Python,
            # however long the app stays behind. Paused within one socket read (up to 256 KB
            # with uvloop) of the limit.
            assert not direct.transport.transport.is_reading()
            assert READ_LIMIT < direct.queue.waiting_bytes <= READ_LIMIT + 256 * 1024
            plugin.hold.set()
            replies = [await recv_json(client) for _ in range(count)]
    assert [reply["seq"] for reply in replies] == list(range(count))
    assert not direct.read_paused
    assert direct.queue.waiting_bytes == 0  # what was counted in was counted out


async def _fail_with_1009_then_keep_sending(addr: str) -> RawWebSocket:
    """A frame announcing 100 KB (over ws_max_size: websockets fails it at the header, 1009),
    then 256 KB more once the server has had time to fail the connection."""
    ws = await RawWebSocket.connect(addr, "/ws?user_id=u")
    assert json.loads(await ws.read_text())["type"] == "connect"
    oversize = encode_frame(Opcode.TEXT, b"a" * 100_000)
    await ws.send_raw(oversize[:70_000])
    await asyncio.sleep(0.3)
    with contextlib.suppress(ConnectionError):
        for _ in range(16):
            await ws.send_raw(b"b" * 16_384)
    await asyncio.sleep(0.3)
    return ws


async def test_a_protocol_failure_closes_lingering_so_the_client_reads_the_close() -> None:
    # netrun-ws's protocol: after the 1009 close frame it closes its writing half and drops what
    # the client still sends, so the client reads the close frame, then an orderly end of
    # stream. uvicorn's own protocol closes at once with the client's bytes unread: the kernel
    # answers them with a reset, which can destroy the close frame (docs/protocol.md, 1009).
    app = create_app(echo_config(max_message_bytes=65536))
    async with serve(app) as addr:
        ws = await _fail_with_1009_then_keep_sending(addr)
        assert (await ws.expect_close()).code == 1009
        assert await asyncio.wait_for(ws.reader.read(), 5) == b""  # a FIN, not a reset
        await ws.aclose()


async def test_the_lingering_ends_after_its_time_if_the_client_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(websocket_transport, "LINGER_SECONDS", 0.3)
    app = create_app(echo_config(max_message_bytes=65536))
    async with serve(app) as addr:
        ws = await _fail_with_1009_then_keep_sending(addr)
        assert (await ws.expect_close()).code == 1009
        await asyncio.sleep(0.6)  # past the linger: the server's socket is gone
        with pytest.raises(ConnectionError):  # a reset, then a broken pipe
            for _ in range(20):
                await ws.send_raw(b"c" * 1024)
                await asyncio.sleep(0.05)
        ws.abort()


async def test_a_client_still_sending_after_a_protocol_failure_reads_the_close_code() -> None:
    # 400 fragments of 1 KB, 400 KB in one write: the server fails the message at 64 KB with
    # 1009 while most of it is still unread. The close frame must reach the client (not a TCP
    # reset that destroys it), every time.
    app = create_app(echo_config(max_message_bytes=65536))
    fragments = [
        encode_frame(Opcode.TEXT if i == 0 else Opcode.CONTINUATION, b"a" * 1024, fin=i == 399)
        for i in range(400)
    ]
    async with serve(app) as addr:
        for _ in range(10):
            ws = await RawWebSocket.connect(addr, "/ws?user_id=u")
            with contextlib.suppress(ConnectionError):
                await ws.send_raw(b"".join(fragments))
            assert (await ws.expect_close()).code == 1009
            await ws.aclose()


async def _replies_then_close(ws: RawWebSocket) -> tuple[list[int], int]:
    """The seq of each echo reply read before the server's close frame, and its code."""
    seqs: list[int] = []
    while True:
        frame = await ws.read_frame(timeout=5.0)
        if frame.opcode == Opcode.CLOSE:
            await ws.aclose()
            return seqs, _close_code(frame.payload)
        seqs.append(json.loads(frame.payload)["seq"])


async def _welcomed(addr: str) -> RawWebSocket:
    ws = await RawWebSocket.connect(addr, "/ws?user_id=u")
    assert json.loads(await ws.read_text())["type"] == "connect"
    return ws


async def _send_echoes_then_close(ws: RawWebSocket, count: int, reason: str = "") -> None:
    """``count`` echoes and the client's close frame (1000), in one write."""
    messages = [json.dumps({"type": "echo", "seq": seq}).encode() for seq in range(count)]
    frames = [encode_frame(Opcode.TEXT, message) for message in messages]
    await ws.send_raw(b"".join(frames) + encode_frame(Opcode.CLOSE, close_payload(1000, reason)))


def _close_code(payload: bytes) -> int:
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005


@pytest.mark.parametrize("ws_protocol", ["netrun", "uvicorn"])
async def test_a_client_closing_while_its_replies_are_pending_gets_them_on_netrun_protocol(
    ws_protocol: str,
) -> None:
    """A client that sends messages and its close frame at once has closed cleanly. On
    netrun-ws's protocol the server answers that close once the app is done with the
    connection, so the replies the app makes meanwhile go out first (here the handler waits
    200 ms before replying); uvicorn's protocol answers at once and drops them. Either way the
    close stays the client's (1000), and no send counts as failed."""
    config = echo_config(ws_protocol)
    config["plugins"] = [ECHO, RECORDING]
    app = create_app(config)
    echo = app.state.host.plugin_manager.get_plugin(ECHO)
    echo.hold.clear()
    events = app.state.host.state["events"]
    async with serve(app) as addr:
        ws = await _welcomed(addr)
        await _send_echoes_then_close(ws, 5, "bye")
        asyncio.get_running_loop().call_later(0.2, echo.hold.set)
        seqs, code = await _replies_then_close(ws)
        assert code == 1000
        assert seqs == (list(range(5)) if ws_protocol == "netrun" else [])
        await wait_for(lambda: any(name == "on_disconnect" for name, _ in events))
        stats = app.state.host.manager.get_stats()
    assert dict(events)["on_disconnect"] == 1000
    assert stats["failed_sends"] == 0


async def test_the_answer_to_a_close_waits_no_longer_than_close_timeout() -> None:
    # A handler that never finishes: the held answer goes out after close_timeout anyway.
    config = echo_config("netrun")
    app = create_app(config)
    echo = app.state.host.plugin_manager.get_plugin(ECHO)
    echo.hold.clear()
    async with serve(app) as addr:
        ws = await _welcomed(addr)
        direct = only_connection(app).direct
        assert isinstance(direct, NetrunWebSocketProtocol)
        direct.close_timeout = 0.3
        await _send_echoes_then_close(ws, 1)
        started = asyncio.get_running_loop().time()
        seqs, code = await _replies_then_close(ws)
        took = asyncio.get_running_loop().time() - started
        echo.hold.set()
    assert (seqs, code) == ([], 1000)
    assert 0.25 < took < 3.0


async def test_uvicorns_shutdown_with_a_held_answer_sends_it() -> None:
    # uvicorn's own shutdown would start a close websockets refuses once the client's close is
    # received (InvalidState): with an answer held, the protocol sends that instead.
    app = create_app(echo_config("netrun"))
    echo = app.state.host.plugin_manager.get_plugin(ECHO)
    echo.hold.clear()
    async with serve(app) as addr:
        ws = await _welcomed(addr)
        await _send_echoes_then_close(ws, 1)
        direct = only_connection(app).direct
        await wait_for(lambda: direct.held_close is not None)
        direct.shutdown()
        assert direct.held_close is None
        assert await _replies_then_close(ws) == ([], 1000)
        echo.hold.set()
