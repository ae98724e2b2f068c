"""netrun_ws._upstream.websockets: netrun-ws reads an upgrade request as websockets' own parser
does (grammar, limits, header decoding), and websockets' protocol takes it from there."""

from __future__ import annotations

import base64
import email.utils
import gc
import logging
import random
import weakref

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeaderValue
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol

from netrun_ws._upstream import websockets as fence
from netrun_ws.transport.websocket import parse_upgrade_request, request_from_fields
from tests.support.raw_ws import encode_frame
from tests.support.upgrade import UPGRADE, header_fields, websockets_parse


def test_the_fence_is_open_for_the_installed_websockets() -> None:
    assert fence.refusal() is None
    assert fence.headers_from is fence._filled_headers  # websockets 17 keeps _dict and _list


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


def test_a_control_byte_in_a_value_is_refused() -> None:
    # Headers are filled without websockets' own check of each value: ours must refuse them.
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


def test_an_open_protocol_keeps_no_empty_event_or_output_list() -> None:
    # Between reads and writes websockets leaves an empty list in events and writes; the fence
    # keeps None instead, and websockets still hands out exactly what it read and wrote.
    conn = fence.ParsedRequestServerProtocol()
    request = parse_upgrade_request(UPGRADE + b"\r\n")
    assert request is not None
    conn.send_response(conn.accept(request))
    assert conn.data_to_send()[0].startswith(b"HTTP/1.1 101 ")
    assert conn.events_received() == []
    assert (conn._events_list, conn._writes_list) == (None, None)
    conn.receive_data(encode_frame(Opcode.PING, b"p") + encode_frame(Opcode.TEXT, b"t"))
    events = conn.events_received()
    assert all(isinstance(event, Frame) for event in events)
    assert [(e.opcode, e.data) for e in events if isinstance(e, Frame)] == [
        (Opcode.PING, b"p"),
        (Opcode.TEXT, b"t"),
    ]
    assert conn.data_to_send() == [b"\x8a\x01p"]  # the pong
    assert (conn._events_list, conn._writes_list) == (None, None)


@pytest.mark.parametrize("ending", [b"", encode_frame(Opcode.CLOSE, b"\x03\xe8"), None])
def test_an_idle_protocol_keeps_no_reader_and_a_new_one_reads_on(ending: bytes | None) -> None:
    # Between frames the parser and its reader are let go; the next bytes, the end of the
    # stream or a failure (None: a keepalive timeout, then more bytes) find a fresh reader, and
    # websockets reads on (or discards) as it would have with the old one.
    def run(drop: bool) -> tuple[object, ...]:
        conn = fence.ParsedRequestServerProtocol()
        conn.state = State.OPEN
        frame = encode_frame(Opcode.TEXT, b"one")
        conn.receive_data(frame[:3])
        fence.drop_idle_parser(conn)
        assert conn.reader is not None  # within a frame: kept
        for data in (frame[3:], encode_frame(Opcode.TEXT, b"two")):
            conn.receive_data(data)
            if drop:
                fence.drop_idle_parser(conn)
                assert conn.reader is None and conn.parser is None
        if ending is None:
            conn.fail(1011, "keepalive ping timeout")
        conn.receive_data(encode_frame(Opcode.TEXT, b"dropped") if ending is None else ending)
        conn.receive_eof()
        events = [(e.opcode, e.data) for e in conn.events_received() if isinstance(e, Frame)]
        return events, conn.data_to_send(), conn.state, type(conn.parser_exc)

    assert fence.ParsedRequestServerProtocol().reader is None  # none before the first byte
    assert run(drop=True) == run(drop=False)


def test_the_fence_refuses_a_websockets_that_keeps_its_output_list_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A data_to_send that appends to a list it kept (here: hands out a copy and empties the
    # original in place) would see the property's None-for-empty as a lost list.
    def data_to_send(self: Protocol) -> list[bytes]:
        writes = list(self.writes)
        self.writes.clear()
        return writes

    assert fence.refusal() is None
    monkeypatch.setattr(Protocol, "data_to_send", data_to_send)
    assert "events or writes" in (fence.refusal() or "")


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


def _answers(data: bytes, **settings: object) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """How netrun-ws's protocol and websockets' own answer the request in ``data`` (status,
    reason, body, headers without their Date, and whether there was one)."""
    answers = []
    for kind in (fence.ParsedRequestServerProtocol, ServerProtocol):
        request = websockets_parse(data)
        response = kind(**settings).accept(request)  # type: ignore[arg-type]
        dated = "Date" in response.headers
        if dated:
            del response.headers["Date"]
        headers = list(response.headers.raw_items())
        reason = response.reason_phrase
        answers.append((response.status_code, reason, response.body, headers, dated))
    return answers[0], answers[1]


@pytest.mark.parametrize(
    ("data", "settings"),
    [
        (UPGRADE + b"\r\n", {}),
        (UPGRADE + b"origin: https://a.example\r\n\r\n", {}),
        (UPGRADE.replace(b"Upgrade\r\n", b"keep-alive, Upgrade\r\n") + b"\r\n", {}),
        (UPGRADE + b"sec-websocket-extensions: permessage-deflate\r\n\r\n", {}),
        (
            UPGRADE + b"sec-websocket-extensions: permessage-deflate\r\n\r\n",
            {"extensions": [ServerPerMessageDeflateFactory()]},
        ),
        (UPGRADE + b"\r\n", {"subprotocols": ["bearer.x"]}),
        (UPGRADE.replace(b"sec-websocket-version: 13", b"sec-websocket-version: 8") + b"\r\n", {}),
        (UPGRADE.replace(b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b"") + b"\r\n", {}),
        (UPGRADE.replace(b"upgrade: websocket", b"upgrade: h2c") + b"\r\n", {}),
        (UPGRADE + b"\r\n", {"origins": ["https://b.example"]}),
    ],
)
def test_accept_answers_as_websockets_accept_does(data: bytes, settings: dict[str, object]) -> None:
    # The usual handshake is answered without websockets' per-call costs; the rest by websockets.
    ours, theirs = _answers(data, **settings)
    assert ours == theirs


def test_the_date_written_once_a_second_is_the_one_websockets_writes() -> None:
    before = email.utils.formatdate(usegmt=True)
    ours = fence._http_date()
    after = email.utils.formatdate(usegmt=True)
    assert ours in (before, after)
    assert email.utils.parsedate_to_datetime(ours).tzname() == "UTC"


@pytest.mark.parametrize(
    "pairs",
    [
        [],
        [("Host", "h")],
        [("A", "1"), ("a", "2"), ("B", ""), ("x-latin", "caf\xe9")],
    ],
)
def test_filled_headers_are_what_the_public_constructor_makes(pairs: list[tuple[str, str]]) -> None:
    filled, stock = fence.headers_from(list(pairs)), Headers(pairs)
    assert filled == stock
    assert list(filled.raw_items()) == list(stock.raw_items())
    assert filled.serialize() == stock.serialize()
    for name in {name for name, _ in pairs}:
        assert filled.get_all(name.upper()) == stock.get_all(name.upper())


def test_headers_are_built_by_the_public_constructor_where_their_layout_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A websockets whose Headers keeps its fields otherwise: the checking constructor serves.
    monkeypatch.setattr(fence, "_filled_headers", lambda pairs: Headers(pairs[:1]))
    assert fence._headers_builder() is Headers


def test_the_fence_refuses_a_server_protocol_that_answers_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert fence.refusal() is None
    original = ServerProtocol.accept

    def accept(self: ServerProtocol, request: Request) -> Response:
        response = original(self, request)
        response.headers["X-New"] = "1"
        return response

    monkeypatch.setattr(ServerProtocol, "accept", accept)
    assert "accept" in (fence.refusal() or "")


def test_a_protocol_is_set_up_as_websockets_sets_it_up() -> None:
    # Fails when websockets' ServerProtocol.__init__ changes: its own then serves (below).
    assert fence._quick_init is fence._quick_init_as_websockets
    conn = fence.ParsedRequestServerProtocol(max_size=1000)
    assert (conn.state, conn.max_message_size) == (State.CONNECTING, 1000)
    assert conn.parser is None  # started at the first bytes


def test_websockets_own_init_serves_where_it_sets_up_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = ServerProtocol.__init__

    def init(self: ServerProtocol, **settings: object) -> None:
        original(self, **settings)  # type: ignore[arg-type]
        self.added = True  # type: ignore[attr-defined]

    monkeypatch.setattr(ServerProtocol, "__init__", init)
    assert fence._quick_init_builder() is None
    monkeypatch.setattr(fence, "_quick_init", None)
    conn = fence.ParsedRequestServerProtocol(max_size=1000)
    assert conn.added and conn.parser is None  # type: ignore[attr-defined]


#: Keys as clients make them (16 random bytes), the same in every run.
_KEYS = random.Random(17)


def _usual_request(**changes: str | None) -> Request:
    fields = {"Host": "h", "Upgrade": "websocket", "Connection": "Upgrade"}
    fields |= {"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}
    for name, value in changes.items():
        fields.pop(name.replace("_", "-"), None)
        if value is not None:
            fields[name.replace("_", "-")] = value
    return Request("/ws", Headers(fields))


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"Origin": "https://a.example"},
        {"Upgrade": "WebSocket", "Connection": "upgrade"},
        *({"Sec_WebSocket_Key": base64.b64encode(_KEYS.randbytes(16)).decode()} for _ in range(40)),
    ],
)
def test_a_usual_handshake_is_negotiated_as_websockets_negotiates_it(
    changes: dict[str, str],
) -> None:
    # Fails when websockets' process_request accepts these requests otherwise.
    assert fence.usual_accept_header is fence._usual_accept_header
    request = _usual_request(**changes)
    ours, theirs = fence.ParsedRequestServerProtocol(), ServerProtocol()
    answer = fence.usual_accept_header(ours, request)
    assert answer is not None
    assert (answer, None, None) == theirs.process_request(request)
    assert (ours.origin, list(ours.extensions), ours.subprotocol) == (
        theirs.origin,
        theirs.extensions,
        theirs.subprotocol,
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"Connection": "keep-alive, Upgrade"},
        {"Connection": None},
        {"Upgrade": "websocket, h2c"},
        {"Upgrade": None},
        {"Sec_WebSocket_Key": "dGhlIHNhbXBsZSBub25jZR=="},  # valid to websockets, not usual
        {"Sec_WebSocket_Key": "short"},
        {"Sec_WebSocket_Key": None},
        {"Sec_WebSocket_Version": "8"},
        {"Sec_WebSocket_Version": None},
        {"Sec_WebSocket_Extensions": "permessage-deflate"},
        {"Sec_WebSocket_Protocol": "chat"},
    ],
)
def test_anything_off_the_usual_shape_is_left_to_websockets_check(
    changes: dict[str, str | None],
) -> None:
    conn = fence.ParsedRequestServerProtocol()
    assert fence.usual_accept_header(conn, _usual_request(**changes)) is None
    assert (conn.origin, conn.extensions, conn.subprotocol) == (None, [], None)  # nothing set


def test_two_values_of_a_usual_field_are_left_to_websockets_check() -> None:
    for name, value in [
        ("Origin", "https://a.example"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
    ]:
        request = _usual_request(Origin="https://a.example")
        request.headers[name] = value  # a second field of the name
        assert fence.usual_accept_header(fence.ParsedRequestServerProtocol(), request) is None


@pytest.mark.parametrize(
    "settings",
    [{"origins": ["https://a.example"]}, {"subprotocols": ["chat"]}, {"select_subprotocol": 1}],
)
def test_a_protocol_that_checks_origins_or_subprotocols_is_left_to_websockets_check(
    settings: dict[str, object],
) -> None:
    if "select_subprotocol" in settings:
        settings = {"select_subprotocol": lambda conn, offered: None}
    conn = fence.ParsedRequestServerProtocol(**settings)
    assert fence.usual_accept_header(conn, _usual_request()) is None


def test_websockets_own_check_serves_where_it_negotiates_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = ServerProtocol.process_request

    def process_request(
        self: ServerProtocol, request: Request
    ) -> tuple[str, str | None, str | None]:
        answer = original(self, request)
        self.subprotocol = "changed"  # type: ignore[assignment]
        return answer

    monkeypatch.setattr(ServerProtocol, "process_request", process_request)
    assert fence._usual_builder() is fence._not_usual
    assert fence._not_usual(ServerProtocol(), _usual_request()) is None


_DEFAULTS = [(b"date", b"Thu, 01 Jan 2026 00:00:00 GMT"), (b"server", b"uvicorn")]


def _stock_answer(fields: list[tuple[bytes, bytes]]) -> tuple[bytes, State]:
    """What uvicorn's accept writes for the usual answer: its Date replaced by ``fields``."""
    conn = fence.ParsedRequestServerProtocol()
    response = conn.accept(_usual_request())
    del response.headers["Date"]
    for name, value in fields:
        response.headers[name.decode("latin-1").lower()] = value.decode("latin-1")
    conn.send_response(response)
    return b"".join(conn.data_to_send()), conn.state


@pytest.mark.parametrize(
    "fields", [[], _DEFAULTS, [*_DEFAULTS, (b"X-Latin", b"caf\xe9"), (b"x-empty", b"")]]
)
def test_the_usual_answer_is_what_send_response_writes(
    fields: list[tuple[bytes, bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    # Fails when websockets serializes or opens otherwise: send_response then serves.
    assert fence.usual_answer is fence._usual_answer
    conn = fence.ParsedRequestServerProtocol()
    with caplog.at_level(logging.INFO, logger="websockets.server"):
        answer = fence.usual_answer(conn, conn.accept(_usual_request()), fields)
    assert (answer, conn.state) == _stock_answer(fields)
    assert conn.data_to_send() == []
    assert [record.getMessage() for record in caplog.records] == ["connection open"]


def test_the_usual_answer_refuses_a_field_websockets_refuses() -> None:
    conn = fence.ParsedRequestServerProtocol()
    response = conn.accept(_usual_request())
    with pytest.raises(InvalidHeaderValue):
        fence.usual_answer(conn, response, [(b"x-bad", b"a\r\nInjected: 1")])
    assert conn.state is State.CONNECTING
    with pytest.raises(InvalidHeaderValue):
        _stock_answer([(b"x-bad", b"a\r\nInjected: 1")])


def test_other_answers_are_left_to_send_response() -> None:
    stock = ServerProtocol()
    assert fence.usual_answer(stock, stock.accept(_usual_request()), _DEFAULTS) is None
    refused = fence.ParsedRequestServerProtocol()
    response = refused.accept(_usual_request(Sec_WebSocket_Version="8"))
    assert fence.usual_answer(refused, response, _DEFAULTS) is None
    debug = fence.ParsedRequestServerProtocol()
    debug.debug = True  # websockets logs each field of its answer then
    assert fence.usual_answer(debug, debug.accept(_usual_request()), _DEFAULTS) is None
    assert (refused.state, debug.state) == (State.CONNECTING, State.CONNECTING)


def test_send_response_serves_where_it_writes_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    original = ServerProtocol.send_response

    def send_response(self: ServerProtocol, response: Response) -> None:
        response.headers["X-New"] = "1"
        original(self, response)

    monkeypatch.setattr(ServerProtocol, "send_response", send_response)
    assert fence._answer_builder() is fence._no_answer
    conn = fence.ParsedRequestServerProtocol()
    assert fence._no_answer(conn, conn.accept(_usual_request()), []) is None
