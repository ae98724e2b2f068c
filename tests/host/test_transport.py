"""netrun-ws's uvicorn websocket protocol (netrun_ws.transport) over a real server: the direct
channel is used, corked writes keep order, reading pauses while the app is behind, and
``server.ws_protocol: uvicorn`` falls back to uvicorn's own protocol through plain ASGI."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.http11 import Request
from websockets.streams import StreamReader

from netrun_ws import create_app
from netrun_ws.transport import http as http_upgrade
from netrun_ws.transport import websocket as transport
from netrun_ws.transport.websocket import (
    CORK_LIMIT,
    READ_LIMIT,
    NetrunWebSocketProtocol,
    parse_upgrade_request,
    request_from_fields,
)
from tests.host.helpers import base_config, recv_json, wait_for
from tests.support.raw_ws import Opcode, RawWebSocket, encode_frame
from tests.support.server import serve

ECHO = "tests.host.echo_plugin"


def echo_config(ws_protocol: str = "netrun", **limits: Any) -> dict[str, Any]:
    return base_config(
        server={"path": "/ws", "ws_protocol": ws_protocol},
        limits={"messages_per_second": 0, **limits},
        plugins=[ECHO],
    )


def only_connection(app: Any) -> Any:
    (connection,) = app.state.host.manager.connections()
    return connection


async def echo_burst(addr: str, count: int, text: str) -> list[dict[str, Any]]:
    """Send ``count`` echoes without waiting, then read ``count`` replies."""
    async with connect(f"ws://{addr}/ws?user_id=u", max_size=None) as client:
        assert (await recv_json(client))["type"] == "connect"
        for seq in range(count):
            await client.send(json.dumps({"type": "echo", "seq": seq, "text": text}))
        return [await recv_json(client) for _ in range(count)]


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


# -- the handshake request: parsed in one pass, websockets' parser for anything unusual -------

UPGRADE = (
    b"GET /ws?user_id=u HTTP/1.1\r\nhost: 127.0.0.1:8000\r\nupgrade: websocket\r\n"
    b"connection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"sec-websocket-version: 13\r\nsec-websocket-protocol: netrun.v1, bearer.x\r\n"
)


def websockets_parse(data: bytes) -> Request:
    """What websockets' own parser makes of ``data`` (it raises on what it refuses)."""
    reader = StreamReader()
    reader.feed_data(data)
    parser = Request.parse(reader.read_line)
    try:
        while True:
            next(parser)
    except StopIteration as done:
        request: Request = done.value
        return request


@pytest.mark.parametrize(
    "extra",
    [
        b"",
        b"x-note:   spaced \t\r\n",
        b"x-latin: caf\xe9\r\n",
        b"x-empty:\r\n",
        b"a: 1\r\na: 2\r\n",
    ],
)
def test_the_one_pass_parse_gives_what_websockets_parser_gives(extra: bytes) -> None:
    data = UPGRADE + extra + b"\r\n"
    ours, theirs = parse_upgrade_request(data), websockets_parse(data)
    assert ours is not None
    assert (ours.method, ours.path) == (theirs.method, theirs.path)
    assert list(ours.headers.raw_items()) == list(theirs.headers.raw_items())


@pytest.mark.parametrize(
    "data",
    [
        UPGRADE,  # no blank line: incomplete
        UPGRADE + b"\r\n" + b"\x81\x00",  # bytes after the request
        UPGRADE.replace(b"GET", b"POST") + b"\r\n",
        UPGRADE.replace(b"HTTP/1.1", b"HTTP/1.0") + b"\r\n",
        UPGRADE + b"bad name: x\r\n\r\n",
        UPGRADE + b"no-colon\r\n\r\n",
        UPGRADE + b"x-ctl: \x01\r\n\r\n",
        UPGRADE + b"content-length: 0\r\n\r\n",
        UPGRADE + b"transfer-encoding: chunked\r\n\r\n",
        UPGRADE + b"x-long: " + b"a" * 9000 + b"\r\n\r\n",
        UPGRADE + b"".join(b"x-%d: y\r\n" % n for n in range(130)) + b"\r\n",
        UPGRADE.replace(b"/ws?", "/wé?".encode()) + b"\r\n",
    ],
)
def test_anything_unusual_is_left_to_websockets_parser(data: bytes) -> None:
    assert parse_upgrade_request(data) is None


def _fields(data: bytes) -> list[tuple[bytes, bytes]]:
    """The header fields of ``data`` as httptools gives them to uvicorn (lower-case names)."""
    lines = data.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    return [(name.lower(), value.strip()) for name, _, value in (x.partition(b":") for x in lines)]


@pytest.mark.parametrize(
    "extra", [b"", b"x-latin: caf\xe9\r\n", b"x-empty:\r\n", b"a: 1\r\na: 2\r\n"]
)
def test_fields_httptools_parsed_give_what_websockets_parser_gives(extra: bytes) -> None:
    # uvicorn's own path: the fields written back as "name: value" lines, read by websockets.
    fields = _fields(UPGRADE + extra + b"\r\n")
    rebuilt = b"GET /ws?user_id=u HTTP/1.1\r\n"
    rebuilt += b"".join(name + b": " + value + b"\r\n" for name, value in fields) + b"\r\n"
    ours, theirs = request_from_fields("GET", b"/ws?user_id=u", fields), websockets_parse(rebuilt)
    assert ours is not None
    assert ours.path == theirs.path
    assert list(ours.headers.raw_items()) == list(theirs.headers.raw_items())


@pytest.mark.parametrize(
    ("method", "target", "extra"),
    [
        ("POST", b"/ws", b""),
        ("GET", "/wé".encode(), b""),
        ("GET", b"/" + b"a" * 8200, b""),
        ("GET", b"/ws", b"x-long: " + b"a" * 9000 + b"\r\n"),
        ("GET", b"/ws", b"".join(b"x-%d: y\r\n" % n for n in range(130))),
        ("GET", b"/ws", b"content-length: 0\r\n"),
        ("GET", b"/ws", b"x-ctl: \x01\r\n"),
    ],
)
def test_unusual_fields_are_left_to_uvicorns_path(method: str, target: bytes, extra: bytes) -> None:
    assert request_from_fields(method, target, _fields(UPGRADE + extra + b"\r\n")) is None


def test_the_protocol_has_every_attribute_uvicorns_has() -> None:
    # NetrunWebSocketProtocol sets up uvicorn's state itself (without the objects it replaces):
    # a uvicorn release that adds state must not leave it missing here.
    import uvicorn
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from uvicorn.server import ServerState

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    config = uvicorn.Config(app)
    config.load()
    loop = asyncio.new_event_loop()
    try:
        theirs = WebSocketsSansIOProtocol(config, ServerState(), {}, _loop=loop)
        ours = NetrunWebSocketProtocol(config, ServerState(), {}, _loop=loop)
    finally:
        loop.close()
    assert set(vars(theirs)) <= set(vars(ours))
    assert ours.conn.max_message_size == theirs.conn.max_message_size
    # uvicorn's permessage-deflate settings (on by default in uvicorn.Config) are kept.
    assert [vars(factory) for factory in ours.conn.available_extensions] == [
        vars(factory) for factory in theirs.conn.available_extensions
    ]
    assert ours.conn.available_extensions


async def test_upgrades_are_handed_over_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    handed_over: list[str] = []
    original = transport.request_from_fields

    def recording(method: str, target: bytes, fields: list[tuple[bytes, bytes]]) -> Any:
        request = original(method, target, fields)
        handed_over.append("parsed" if request is not None else "uvicorn's path")
        return request

    monkeypatch.setattr(http_upgrade, "request_from_fields", recording)
    async with serve(create_app(echo_config())) as addr:
        replies = await echo_burst(addr, 3, "x")
        assert [reply["seq"] for reply in replies] == [0, 1, 2]
        long_header = {"x-long": "a" * 9000}
        with pytest.raises(Exception, match="431"):
            async with connect(f"ws://{addr}/ws?user_id=u", additional_headers=long_header):
                pass
    assert handed_over == ["parsed", "uvicorn's path"]


async def upgrade_status(addr: str, request: bytes) -> bytes:
    host, _, port = addr.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        return (await asyncio.wait_for(reader.readline(), 5)).rstrip()
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ((b"", b""), b"101"),
        ((b"connection: Upgrade", b"connection: keep-alive, Upgrade"), b"101"),
        ((b"sec-websocket-version: 13", b"sec-websocket-version: 8"), b"400"),
        ((b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==", b"sec-websocket-key: short"), b"400"),
        ((b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""), b"400"),
        ((b"connection: Upgrade", b"connection: Upgrade\r\ncontent-length: 0"), b"101"),
    ],
)
async def test_both_protocols_answer_every_upgrade_request_alike(
    change: tuple[bytes, bytes], status: bytes
) -> None:
    request = UPGRADE.replace(*change) + b"\r\n"
    statuses = []
    for ws_protocol in ("netrun", "uvicorn"):
        async with serve(create_app(echo_config(ws_protocol))) as addr:
            statuses.append(await upgrade_status(addr, request))
    assert statuses[0] == statuses[1]
    assert statuses[0].split(b" ")[1] == status


async def test_a_header_line_over_websockets_limit_gets_431_not_silence() -> None:
    # websockets refuses a header line over 8 KB with 431; uvicorn's own protocol never writes
    # that answer (the client waits until it gives up), netrun-ws's does and closes.
    request = UPGRADE + b"x-long: " + b"a" * 9000 + b"\r\n\r\n"
    async with serve(create_app(echo_config("netrun"))) as addr:
        assert (await upgrade_status(addr, request)).split(b" ")[1] == b"431"
        replies = await echo_burst(addr, 2, "still serving")
        assert [reply["seq"] for reply in replies] == [0, 1]
    async with serve(create_app(echo_config("uvicorn"))) as addr:
        with pytest.raises(asyncio.TimeoutError):
            await upgrade_status(addr, request)


async def _response_head(addr: str, request: bytes) -> list[bytes]:
    host, _, port = addr.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        return [line for line in head.split(b"\r\n") if not line.lower().startswith(b"date:")]
    finally:
        writer.close()


@pytest.mark.parametrize("offered", [b"netrun-ws, bearer.x", b"netrun.v1"])
async def test_both_protocols_send_the_same_101(offered: bytes) -> None:
    request = UPGRADE.replace(b"netrun.v1, bearer.x", offered) + b"\r\n"
    heads = []
    for ws_protocol in ("netrun", "uvicorn"):
        async with serve(create_app(echo_config(ws_protocol))) as addr:
            heads.append(await _response_head(addr, request))
    assert heads[0] == heads[1]
    assert heads[0][0] == b"HTTP/1.1 101 Switching Protocols"
    assert (b"Sec-WebSocket-Protocol: netrun-ws" in heads[0]) == offered.startswith(b"netrun-ws")


@pytest.mark.parametrize("headers_check_values", [True, False])
def test_a_control_byte_in_a_value_is_refused_whoever_checks_it(
    monkeypatch: pytest.MonkeyPatch, headers_check_values: bool
) -> None:
    # websockets 17's Headers refuses such values itself; older releases leave it to us.
    monkeypatch.setattr(transport, "_HEADERS_CHECK_VALUES", headers_check_values)
    fields = _fields(UPGRADE + b"\r\n")
    assert request_from_fields("GET", b"/ws", fields) is not None
    assert request_from_fields("GET", b"/ws", [*fields, (b"x-ctl", b"a\x01b")]) is None
    assert request_from_fields("GET", b"/ws", [*fields, (b"x-del", b"\x7f")]) is None


async def test_an_upgrade_leaves_no_garbage_cycle_behind() -> None:
    # httptools' parser and uvicorn's HTTP protocol reference each other; after the hand-over
    # the cycle is broken, so the HTTP protocol is freed at once rather than by the collector.
    import gc
    import weakref

    from netrun_ws.transport.http import NetrunHttpToolsProtocol

    made: list[weakref.ref[NetrunHttpToolsProtocol]] = []
    original_init = NetrunHttpToolsProtocol.__init__

    def recording_init(self: NetrunHttpToolsProtocol, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        made.append(weakref.ref(self))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(NetrunHttpToolsProtocol, "__init__", recording_init)
        async with serve(create_app(echo_config())) as addr:
            gc.disable()
            try:
                replies = await echo_burst(addr, 1, "x")
                assert replies[0]["seq"] == 0
                # With the collector off, only reference counting can free them (a cycle would
                # keep them until the deadline fails the test).
                await wait_for(lambda: made and all(ref() is None for ref in made))
            finally:
                gc.enable()
