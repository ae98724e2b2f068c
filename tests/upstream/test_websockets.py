"""netrun_ws._upstream.websockets: netrun-ws reads an upgrade request as websockets' own parser
does (grammar, limits, header decoding), and websockets' protocol takes it from there."""

from __future__ import annotations

import gc
import weakref

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol

from netrun_ws._upstream import websockets as fence
from netrun_ws.transport import websocket as transport
from netrun_ws.transport.websocket import parse_upgrade_request, request_from_fields
from tests.support.raw_ws import encode_frame
from tests.support.upgrade import UPGRADE, header_fields, websockets_parse


def test_the_fence_is_open_for_the_installed_websockets() -> None:
    assert fence.refusal() is None
    assert fence.HEADERS_CHECK_VALUES  # websockets 17 checks header values itself


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


@pytest.mark.parametrize(
    "extra", [b"", b"x-latin: caf\xe9\r\n", b"x-empty:\r\n", b"a: 1\r\na: 2\r\n"]
)
def test_fields_httptools_parsed_give_what_websockets_parser_gives(extra: bytes) -> None:
    # uvicorn's own path: the fields written back as "name: value" lines, read by websockets.
    fields = header_fields(UPGRADE + extra + b"\r\n")
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
    fields = header_fields(UPGRADE + extra + b"\r\n")
    assert request_from_fields(method, target, fields) is None


@pytest.mark.parametrize("headers_check_values", [True, False])
def test_a_control_byte_in_a_value_is_refused_whoever_checks_it(
    monkeypatch: pytest.MonkeyPatch, headers_check_values: bool
) -> None:
    # websockets 17's Headers refuses such values itself; older releases leave it to us.
    monkeypatch.setattr(transport, "HEADERS_CHECK_VALUES", headers_check_values)
    fields = header_fields(UPGRADE + b"\r\n")
    assert request_from_fields("GET", b"/ws", fields) is not None
    assert request_from_fields("GET", b"/ws", [*fields, (b"x-ctl", b"a\x01b")]) is None
    assert request_from_fields("GET", b"/ws", [*fields, (b"x-del", b"\x7f")]) is None


def test_a_protocol_given_a_parsed_request_reads_frames_at_once() -> None:
    # The request never reaches this protocol's parser: accepted, it must take the client's
    # first bytes as a frame, not as the start of a request.
    conn = fence.ParsedRequestServerProtocol()
    request = parse_upgrade_request(UPGRADE + b"\r\n")
    assert request is not None
    response = conn.accept(request)
    assert response.status_code == 101
    conn.send_response(response)
    assert conn.state is State.OPEN
    assert conn.data_to_send()[0].startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    conn.receive_data(encode_frame(Opcode.TEXT, b"hello"))
    (event,) = conn.events_received()
    assert isinstance(event, Frame)
    assert (event.opcode, event.data) == (Opcode.TEXT, b"hello")


@pytest.mark.parametrize(
    "ending",
    [
        encode_frame(Opcode.CLOSE, b"\x03\xe8"),  # a closing handshake, then EOF
        encode_frame(Opcode.TEXT, b"cut short")[:4],  # EOF in the middle of a frame
        b"",  # EOF between frames
    ],
)
def test_a_released_protocol_is_freed_by_refcounting(ending: bytes) -> None:
    # websockets keeps a finished protocol in a cycle through its parser generator (and the
    # parse error's traceback); release_parser breaks it. Fails if that ever changes shape.
    gc.collect()
    gc.disable()
    try:
        conn = fence.ParsedRequestServerProtocol()
        conn.state = State.OPEN
        conn.receive_data(ending)
        conn.receive_eof()
        reader = weakref.ref(conn.reader)
        fence.release_parser(conn)
        del conn
        assert reader() is None
    finally:
        gc.enable()


def test_an_unreleased_protocol_waits_for_the_collector() -> None:
    # Why release_parser exists: when this fails, websockets frees its protocols by itself.
    gc.collect()
    gc.disable()
    try:
        conn = fence.ParsedRequestServerProtocol()
        conn.state = State.OPEN
        conn.receive_data(encode_frame(Opcode.CLOSE, b"\x03\xe8"))
        conn.receive_eof()
        reader = weakref.ref(conn.reader)
        del conn
        assert reader() is not None
        gc.collect()
        assert reader() is None
    finally:
        gc.enable()


def test_the_fence_refuses_a_server_protocol_that_parses_frames_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert fence.refusal() is None
    monkeypatch.setattr(ServerProtocol, "parse", Protocol.parse)
    assert "parse" in (fence.refusal() or "")


def test_connection_state_follows_a_protocol_through_its_close() -> None:
    conn = fence.ParsedRequestServerProtocol()
    conn.state = State.OPEN
    assert fence.connection_state(conn) is State.OPEN
    conn.receive_data(encode_frame(0x8, b"\x03\xe8", mask=True))  # the peer's close frame
    assert conn.state is State.CLOSING
    assert fence.connection_state(conn) is State.CLOSING
    conn.receive_eof()
    closed: State = conn.state  # read anew: the type checker keeps it narrowed to CLOSING above
    assert fence.connection_state(conn) is closed is State.CLOSED


def test_connection_state_reads_the_property_where_the_attribute_is_not_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A websockets whose property no longer returns ``_state``: the property is read.
    monkeypatch.setattr(
        fence.ParsedRequestServerProtocol,
        "state",
        property(lambda self: State.CLOSED, lambda self, value: None),
    )
    reader = fence._state_reader()
    conn = fence.ParsedRequestServerProtocol()
    assert reader(conn) is State.CLOSED
