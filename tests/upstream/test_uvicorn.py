"""netrun_ws._upstream.uvicorn and .uvicorn_httptools: netrun-ws's protocols still fit uvicorn's.

Its websocket protocol sets up the state uvicorn's does, answers every upgrade request as
uvicorn's does (but for the 431 uvicorn never sends), and its HTTP protocol hands upgrades over
parsed without leaving a garbage cycle behind.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect

from netrun_ws import cli, create_app
from netrun_ws._upstream import ReleaseRange
from netrun_ws._upstream import uvicorn as fence
from netrun_ws._upstream import uvicorn_httptools as http_fence
from netrun_ws._upstream import websockets as ws_fence
from netrun_ws.connection import DIRECT_EXTENSION
from netrun_ws.transport import http as http_upgrade
from netrun_ws.transport import websocket as transport
from netrun_ws.transport.http import NetrunHttpToolsProtocol
from netrun_ws.transport.websocket import NetrunWebSocketProtocol
from tests.host.helpers import echo_burst, echo_config
from tests.support.server import serve
from tests.support.upgrade import UPGRADE, header_fields, response_head, upgrade_status


def test_the_fences_are_open_for_the_installed_uvicorn() -> None:
    assert fence.refusal() is None
    assert http_fence.refusal() is None


def test_the_state_listed_is_what_uvicorns_init_sets_up() -> None:
    assert fence.stored_attributes(fence.WebSocketsSansIOProtocol.__init__) == fence.STATE


def _set_up(protocol: object) -> set[str]:
    """The attributes set on ``protocol``, in its slots or its dict."""
    slots = {name for kind in type(protocol).__mro__ for name in getattr(kind, "__slots__", ())}
    return {name for name in slots if hasattr(protocol, name)} | set(vars(protocol))


def test_the_protocol_has_every_attribute_uvicorns_has() -> None:
    # NetrunWebSocketProtocol sets up uvicorn's state itself (without the objects it replaces):
    # a uvicorn release that adds state must not leave it missing here.
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    config = uvicorn.Config(app)
    config.load()
    loop = asyncio.new_event_loop()
    try:
        theirs = fence.WebSocketsSansIOProtocol(config, fence.ServerState(), {}, _loop=loop)
        ours = NetrunWebSocketProtocol(config, fence.ServerState(), {}, _loop=loop)
    finally:
        loop.close()
    assert set(vars(theirs)) <= _set_up(ours)
    assert fence.STATE <= _set_up(ours)
    # All of it in slots: no instance dict is made for it.
    assert not getattr(ours, "__dict__", None)
    assert ours.conn.max_message_size == theirs.conn.max_message_size
    # uvicorn's permessage-deflate settings (on by default in uvicorn.Config) are kept.
    assert ours.conn.available_extensions is not None
    assert theirs.conn.available_extensions is not None
    assert [vars(factory) for factory in ours.conn.available_extensions] == [
        vars(factory) for factory in theirs.conn.available_extensions
    ]
    assert ours.conn.available_extensions


def test_the_fence_refuses_a_release_it_was_not_tested_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fence, "TESTED", ReleaseRange("uvicorn", (0, 99), (0, 100)))
    expected = f"uvicorn {uvicorn.__version__} is not in the tested range >=0.99,<0.100"
    assert fence.refusal() == expected


def test_the_fence_refuses_state_netrun_ws_does_not_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fence, "STATE", fence.STATE - {"pong_timer"})
    assert fence.refusal() == (
        "uvicorn's websocket protocol sets up state netrun-ws's does not: ['pong_timer']"
    )


def test_the_fence_refuses_a_protocol_without_a_method_netrun_ws_uses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(fence.WebSocketsSansIOProtocol, "handle_pong")
    assert fence.refusal() == "uvicorn's websocket protocol has no ['handle_pong']"


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


async def test_a_refused_upgrade_logs_no_error_on_netrun_ws_protocol(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # uvicorn 0.54's websockets-sansio protocol logs "ASGI callable returned without completing
    # handshake" at ERROR after every denial response (Kludex/uvicorn pull request 3138);
    # netrun-ws's protocol marks the handshake done once the denial is written. When the
    # uvicorn case fails, upstream has fixed it: drop the workaround and the note in
    # server.ws_protocol's description.
    logged = {}
    error_log = logging.getLogger("uvicorn.error")  # uvicorn's own logger does not propagate
    request = UPGRADE.replace(b"/ws?user_id=u ", b"/ws?user_id=u&since=x ") + b"\r\n"
    for ws_protocol in ("netrun", "uvicorn"):
        caplog.clear()
        async with serve(create_app(echo_config(ws_protocol))) as addr:
            error_log.addHandler(caplog.handler)  # after uvicorn configured its loggers
            try:
                assert (await upgrade_status(addr, request)).split(b" ")[1] == b"400"
                replies = await echo_burst(addr, 1, "still serving")
                assert [reply["seq"] for reply in replies] == [0]
            finally:
                error_log.removeHandler(caplog.handler)
        logged[ws_protocol] = [r.getMessage() for r in caplog.records if r.levelno >= 40]
    assert logged["netrun"] == []
    assert logged["uvicorn"] == ["ASGI callable returned without completing handshake."]


@pytest.mark.parametrize("offered", [b"netrun-ws, bearer.x", b"netrun.v1", None])
async def test_both_protocols_send_the_same_101(
    offered: bytes | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None: no subprotocol offered, the usual handshake netrun-ws's protocol answers at once.
    answered: list[bool] = []
    original = ws_fence.usual_answer

    def recording(*args: Any) -> bytes | None:
        answer = original(*args)
        answered.append(answer is not None)
        return answer

    monkeypatch.setattr(transport, "usual_answer", recording)
    if offered is None:
        request = UPGRADE.replace(b"sec-websocket-protocol: netrun.v1, bearer.x\r\n", b"")
    else:
        request = UPGRADE.replace(b"netrun.v1, bearer.x", offered)
    heads = []
    for ws_protocol in ("netrun", "uvicorn"):
        async with serve(create_app(echo_config(ws_protocol))) as addr:
            heads.append(await response_head(addr, request + b"\r\n"))
    assert heads[0] == heads[1]
    assert heads[0][0] == b"HTTP/1.1 101 Switching Protocols"
    assert b"server: uvicorn" in heads[0]  # uvicorn's default headers, after websockets' own
    offered_ours = offered is not None and offered.startswith(b"netrun-ws")
    assert (b"Sec-WebSocket-Protocol: netrun-ws" in heads[0]) == offered_ours
    # Written at once without a subprotocol to answer (none offered, or none of ours).
    assert answered == ([] if offered_ours else [True])


async def test_an_upgrade_leaves_no_garbage_cycle_behind() -> None:
    # httptools' parser and uvicorn's HTTP protocol reference each other; after the hand-over
    # the cycle is broken, so the HTTP protocol is freed at once rather than by the collector.
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
                await asyncio.sleep(0.05)
                assert made and all(ref() is None for ref in made)
            finally:
                gc.enable()


@pytest.mark.parametrize("ws_protocol", ["netrun", "uvicorn"])
async def test_the_connection_guard_sees_accept_and_the_upgrade(ws_protocol: str) -> None:
    # netrun_ws.transport.guard relies on uvicorn serving with the HTTP protocol class a loaded
    # Config holds, and on its upgrade calling set_protocol on the transport that protocol was
    # given: else pending connections would go unbounded, or upgraded ones be cut as pending.
    config = echo_config(ws_protocol, request_timeout=0.5)
    async with serve(create_app(config)) as addr:
        host, _, port = addr.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        answer = await asyncio.wait_for(reader.read(), 10)  # sent nothing: 408, then closed
        assert answer.startswith(b"HTTP/1.1 408 ")
        writer.close()
        async with connect(f"ws://{addr}/ws?user_id=u") as client:
            await client.recv()
            await asyncio.sleep(1.0)  # twice the request timeout
            await client.send('{"type": "echo", "seq": 3}')
            assert '"seq":3' in str(await client.recv()).replace(" ", "")


def _accepting_with(headers: list[tuple[bytes, bytes]]) -> Any:
    """A raw ASGI app that accepts every websocket with ``headers`` and closes it."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept", "headers": headers})
            await send({"type": "websocket.close", "code": 1000})

    return app


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"X-App", b"one"), (b"x-app", b"two, three")],
        [(b"x-latin", "café".encode("latin-1"))],
        [(b"x-ctl", b"a\x01b")],  # refused by websockets' Headers: the app's send raises
        [(b"bad name", b"v")],
    ],
)
async def test_an_app_accepting_with_headers_is_answered_alike_by_both_protocols(
    headers: list[tuple[bytes, bytes]],
) -> None:
    heads = []
    for ws_protocol in ("netrun", "websockets-sansio"):
        settings: dict[str, Any] = {"ws": ws_protocol}
        if ws_protocol == "netrun":
            settings = {
                "ws": cli.ws_protocol_class("netrun"),
                "http": cli.http_protocol_class("netrun"),
            }
        async with serve(_accepting_with(headers), **settings) as addr:
            heads.append(await response_head(addr, UPGRADE + b"\r\n"))
    assert heads[0] == heads[1]


async def test_the_guard_hands_uvicorns_http_protocols_its_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # uvicorn's protocols would look the loop up (a getpid() system call on Python 3.11).
    from netrun_ws.transport.guard import guard_requests
    from netrun_ws.transport.pending import RequestLimits

    def looked_up() -> asyncio.AbstractEventLoop:
        raise AssertionError("the protocol looked the event loop up")

    monkeypatch.setattr(asyncio, "get_event_loop", looked_up)
    for http in ("httptools", "h11", cli.http_protocol_class("netrun")):
        config = uvicorn.Config(_accepting_with([]), http=http)
        guard_requests(config, RequestLimits())
        state = fence.ServerState()
        guarded: Any = config.http_protocol_class
        guard = guarded(config=config, server_state=state, app_state={})
        assert guard.inner_takes_loop
        transport = _AddressedTransport()
        guard.connection_made(transport)
        assert guard._inner.loop is guard.loop is asyncio.get_running_loop()
        guard.connection_lost(None)


class _AddressedTransport(asyncio.Transport):
    """A socket transport as far as a protocol's ``connection_made`` reads it."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (16384, 65536)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass


class _Socket:
    """As much of a socket transport as a websocket protocol's handshake uses."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _connected(protocol: Any, socket: _Socket) -> Any:
    protocol.transport = socket
    protocol.server, protocol.client, protocol.scheme = ("127.0.0.1", 80), ("127.0.0.1", 5), "ws"
    return protocol


@pytest.mark.parametrize(
    ("target", "extra"),
    [
        (b"/ws?user_id=u", b""),
        (b"/w%20s?a=%20b", b"x-trailing: value \t\r\n"),
        (b"/ws", b"sec-websocket-protocol: netrun.v1, bearer.x\r\nsec-websocket-protocol: c\r\n"),
        (b"/ws", b"sec-websocket-extensions: permessage-deflate\r\n"),
        (b"/ws", b"origin: https://a.example\r\n"),
    ],
)
async def test_a_request_handed_over_parsed_gets_the_scope_uvicorns_handle_connect_makes(
    target: bytes, extra: bytes
) -> None:
    # Fails when uvicorn's handle_connect builds its scope otherwise: connect_parsed must follow.
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(3600)

    config = uvicorn.Config(app)
    config.load()
    loop = asyncio.get_running_loop()
    request = UPGRADE.replace(b"sec-websocket-protocol: netrun.v1, bearer.x\r\n", extra)
    fields = [
        (name, value + b" " if name == b"x-trailing" else value)
        for name, value in header_fields(request + b"\r\n")
    ]  # httptools leaves a value's trailing spaces
    theirs = _connected(
        fence.WebSocketsSansIOProtocol(config, fence.ServerState(), {}, _loop=loop), _Socket()
    )
    ours = _connected(
        NetrunWebSocketProtocol(config, fence.ServerState(), {}, _loop=loop), _Socket()
    )
    theirs.handle_connect(transport.request_from_fields("GET", target, list(fields)))
    ours.connect_parsed(transport.request_from_fields("GET", target, list(fields)), fields)
    try:
        their_scope, our_scope = dict(theirs.scope), dict(ours.scope)
        assert our_scope.pop("extensions") == {
            **their_scope.pop("extensions"),
            DIRECT_EXTENSION: ours,
        }
        assert list(our_scope.pop("subprotocols")) == their_scope.pop("subprotocols")
        assert list(our_scope) == list(their_scope)  # the same keys, in uvicorn's order
        assert our_scope == their_scope
        assert ours.plain_frames == (not extra.startswith(b"sec-websocket-extensions"))
    finally:
        for task in (*theirs.tasks, *ours.tasks):
            task.cancel()


async def test_a_refused_request_handed_over_parsed_is_answered_as_uvicorn_answers_it() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    config = uvicorn.Config(app)
    config.load()
    loop = asyncio.get_running_loop()
    fields = header_fields(UPGRADE.replace(b"version: 13", b"version: 8") + b"\r\n")
    answers = []
    for kind in (fence.WebSocketsSansIOProtocol, NetrunWebSocketProtocol):
        socket = _Socket()
        protocol = _connected(kind(config, fence.ServerState(), {}, _loop=loop), socket)
        request = transport.request_from_fields("GET", b"/ws", list(fields))
        if kind is NetrunWebSocketProtocol:
            protocol.connect_parsed(request, fields)
        else:
            protocol.handle_connect(request)
        head = b"".join(socket.written).split(b"\r\n")
        heads = [line for line in head if not line.lower().startswith(b"date:")]
        flags = (protocol.handshake_complete, protocol.close_sent, socket.closed)
        answers.append((heads, flags, len(protocol.tasks)))
    assert answers[0] == answers[1]
    assert answers[1][0][0] == b"HTTP/1.1 400 Bad Request"


async def test_an_upgrade_request_is_read_for_its_upgrade_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # uvicorn asks _should_upgrade twice per upgrade request; the answer is kept for the request.
    read: list[int] = []
    original = http_fence.HttpToolsProtocol._get_upgrade

    def counting(self: Any) -> bytes | None:
        read.append(1)
        return original(self)

    monkeypatch.setattr(http_fence.HttpToolsProtocol, "_get_upgrade", counting)
    async with serve(create_app(echo_config())) as addr:
        for _ in range(3):
            assert [reply["seq"] for reply in await echo_burst(addr, 1, "x")] == [0]
    assert len(read) == 3


def test_the_fence_refuses_an_httptools_protocol_without_should_upgrade(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(http_fence.HttpToolsProtocol, "_should_upgrade")
    assert http_fence.refusal() == "uvicorn's httptools protocol has no _should_upgrade"
