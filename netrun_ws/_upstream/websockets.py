"""websockets internals that netrun-ws's websocket protocol (netrun_ws.transport.websocket) uses.

Tested with websockets 17 (:data:`TESTED`). The upgrade request reaches websockets' sans-I/O
``ServerProtocol`` already parsed (docs/architecture.md), which relies on:

- ``Protocol.parse``, the frame parser, and ``ServerProtocol.parse``, which first reads the
  request and then runs it: :class:`ParsedRequestServerProtocol` starts at the frames;
- :data:`MAX_LINE_LENGTH` and :data:`MAX_NUM_HEADERS`, the limits of websockets' HTTP parser,
  which ``request_from_fields`` applies so that it refuses what that parser refuses;
- the ``Request`` that parser builds (its path, and header values decoded as ISO-8859-1, as
  17 does) and ``ServerProtocol.accept`` taking a ``Request`` built elsewhere;
- ``handshake_exc`` being set, with the error response queued, when the parser refuses a
  request it has not finished reading (a 431 for an over-long line);
- for the whole-frame fast path (:func:`parser_idle`): that the frame parser (``Protocol.parse``)
  waits between frames inside ``StreamReader.at_eof`` with an empty ``reader.buffer``, that
  ``current_size`` is None outside a fragmented message, and that a whole, final, masked text or
  binary frame in the OPEN state does nothing but append itself to the protocol's events (so a
  reader that delivers such frames itself, and hands websockets the bytes from the first frame
  it does not take, changes nothing); and :func:`apply_mask`, websockets' compiled unmasking;
- for the per-recipient step of a broadcast (:data:`connection_state`): that the ``state``
  property returns the protocol's ``_state`` attribute (checked on a live protocol; the
  property itself is read otherwise);
- for letting go of the frame parser between frames (:func:`drop_idle_parser`): that
  ``Protocol.parse`` keeps nothing in its own variables from one frame to the next (each frame
  starts again at ``at_eof``), so a fresh parser continues where an idle one stood, that
  only ``receive_data`` and ``receive_eof`` advance it (the others replace it), and that its
  ``StreamReader`` (``reader``) is read only by the parser, by ``discard`` (the generator that
  replaces it once the connection fails or closes) and by those two, holding nothing between
  frames of an open connection but an empty buffer (so a fresh one continues too);
- for keeping less per connection (:class:`ParsedRequestServerProtocol`): that websockets
  assigns ``id`` once in ``Protocol.__init__`` and reads it only for its own logs, and that
  ``ServerProtocol.process_extensions`` returns the accepted extensions as a new list that
  websockets only iterates afterwards (so an empty one may be a shared empty tuple), and that
  websockets reaches its received events and its output only as the attributes ``events`` and
  ``writes``, appending to the list it reads there and handing it out (``events_received``,
  ``data_to_send``) by putting a new empty list in its place, which it keeps no other reference
  to (so an empty one need not be kept: :func:`_lean_lists_refusal` checks it);
- for freeing a closed connection at once (:func:`release_parser`): that the frame parser is the
  generator in ``parser``, whose suspended frame holds the protocol (a cycle), and that
  ``parser_exc``'s traceback holds that frame too;
- for building headers without a check per field (:func:`headers_from`): that ``Headers``
  keeps its fields as ``_dict`` (lowercased name -> values, in order) and ``_list`` (the
  ``(name, value)`` pairs, in order) and reads nothing else (checked on live objects at import:
  the public constructor serves otherwise);
- for the usual handshake's answer (:meth:`ParsedRequestServerProtocol.accept`): that
  ``ServerProtocol.process_request`` checks the request and returns the ``Sec-WebSocket-Accept``,
  ``-Extensions`` and ``-Protocol`` values (raising for a request ``accept`` refuses), and that
  ``accept`` sets ``accept_called`` and answers Date, Upgrade, Connection and
  ``Sec-WebSocket-Accept`` (the guard test compares the two answers); and, for a request of the
  usual shape (:func:`usual_accept_header`), that ``process_request`` accepts it with the
  ``accept_key`` of its key, no extension and no subprotocol, setting ``origin`` to its Origin
  (checked on live protocols at import; websockets' own check serves otherwise); and, to write
  that answer at once (:func:`usual_answer`), that ``send_response`` queues for a 101 the
  status line and ``Headers``' serialization and moves the protocol to OPEN, logging
  "connection open" (compared on live protocols at import; ``send_response`` serves otherwise).

:func:`refusal` checks the release and the parsers and limits named here;
tests/upstream/test_websockets.py compares netrun-ws's parsing with websockets' own.
"""

from __future__ import annotations

import email.utils
import inspect
import logging
import re
import time
import uuid
from collections.abc import Callable, Generator
from operator import attrgetter
from typing import Any, Generic, TypeVar

from websockets.datastructures import Headers
from websockets.extensions import Extension
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS, Request, Response
from websockets.protocol import Event, Protocol, Side, State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader
from websockets.utils import accept_key

from netrun_ws._upstream import ReleaseRange

__all__ = [
    "MAX_LINE_LENGTH",
    "MAX_NUM_HEADERS",
    "TESTED",
    "ParsedRequestServerProtocol",
    "apply_mask",
    "connection_state",
    "drop_idle_parser",
    "headers_from",
    "parser_idle",
    "refusal",
    "release_parser",
    "usual_accept_header",
    "usual_answer",
]

TESTED = ReleaseRange("websockets", (17,), (18,))

_Item = TypeVar("_Item")


class _FilledListOnly(Generic[_Item]):
    """A list attribute of websockets' protocol (``events``, ``writes``) kept in ``stored`` as
    None while empty: websockets reads it to append or hand it out, and puts a new empty list in
    its place; reading it makes a list again."""

    def __init__(self, stored: str) -> None:
        self.stored = stored

    def __get__(self, conn: object, owner: object = None) -> list[_Item]:
        items: list[_Item] | None = getattr(conn, self.stored)
        if items is None:
            items = []
            setattr(conn, self.stored, items)
        return items

    def __set__(self, conn: object, items: list[_Item]) -> None:
        setattr(conn, self.stored, items or None)


def _filled_headers(pairs: list[tuple[str, str]]) -> Headers:
    headers = Headers.__new__(Headers)
    by_name: dict[str, list[str]] = {}
    for name, value in pairs:
        by_name.setdefault(name.lower(), []).append(value)
    headers._dict = by_name
    headers._list = pairs
    return headers


def _headers_builder() -> Callable[[list[tuple[str, str]]], Headers]:
    """:func:`_filled_headers` where it makes what ``Headers``' own constructor makes, read and
    changed through the public methods alike; that constructor otherwise."""
    pairs = [("Host", "h"), ("X-Two", "1"), ("x-two", "2"), ("Empty", "")]
    try:
        filled, stock = _filled_headers(list(pairs)), Headers(pairs)
        for step in range(2):
            same = (
                filled == stock
                and list(filled.raw_items()) == list(stock.raw_items())
                and filled.serialize() == stock.serialize()
                and filled.get_all("X-TWO") == stock.get_all("X-TWO")
                and (filled["host"], len(filled), "x-two" in filled)
                == (stock["host"], len(stock), "x-two" in stock)
            )
            if not same:
                return Headers
            if step == 0:
                for headers in (filled, stock):
                    del headers["x-two"]
                    headers["Added"] = "v"
    except Exception:
        return Headers
    return _filled_headers


#: ``headers_from(pairs)``: websockets ``Headers`` holding ``pairs``, a new list of
#: ``(name, value)`` it may keep. No value is checked here: the caller has checked them
#: (``Headers.__setitem__`` runs a regular expression over every value, and its constructor
#: goes through ``MutableMapping.update`` in Python: about 12,000 instructions for no header).
headers_from: Callable[[list[tuple[str, str]]], Headers] = _headers_builder()

#: The Date header websockets' accept would write this second: (second, value).
_date: tuple[int, str] = (0, "")


def _http_date() -> str:
    """``email.utils.formatdate(usegmt=True)``, formatted once a second (it takes about 25,000
    instructions: every accept paid it, and uvicorn replaces the header anyway)."""
    global _date
    second = int(time.time())
    if _date[0] != second:
        _date = (second, email.utils.formatdate(second, usegmt=True))
    return _date[1]


class _UsualResponse(Response):
    """The answer :meth:`ParsedRequestServerProtocol.accept` builds itself (a usual handshake's):
    :func:`usual_answer` knows its fields."""


class ParsedRequestServerProtocol(ServerProtocol):
    """websockets' server protocol for a connection whose upgrade request was parsed already:
    its parser starts at the frames (the stock one first waits for the request's lines).

    Its frame parser exists only while it has something to read: between frames the suspended
    generator (and the ``at_eof`` generator it waits in, about 440 bytes) holds nothing a fresh
    one would not, so :func:`drop_idle_parser` lets it go and the next bytes start a new one.

    More that an idle connection need not keep: the random UUID websockets names each
    connection with in its logs (about 100 bytes; ``id`` is derived from the object's identity
    instead, unique among live connections), a list per connection for no negotiated
    extension (an empty tuple is shared), and the empty lists websockets leaves in ``events``
    and ``writes`` once it has handed out what they held (56 bytes each): those two are
    properties that keep None for an empty list and make a list again when read."""

    parse = Protocol.parse
    _events_list: list[Event] | None
    _writes_list: list[bytes] | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if _quick_init is not None and not args and kwargs.keys() <= _QUICK_INIT_SETTINGS:
            _quick_init(self, **kwargs)
            return
        super().__init__(*args, **kwargs)
        self.parser.close()  # started by websockets; restarted at the first bytes
        self.parser = None  # type: ignore[assignment]
        self.reader = None  # type: ignore[assignment]  # made again with the parser

    @property
    def id(self) -> uuid.UUID:
        return uuid.UUID(int=id(self))

    @id.setter
    def id(self, value: uuid.UUID) -> None:
        pass  # websockets' random UUID, made in Protocol.__init__: not kept

    events: _FilledListOnly[Event] = _FilledListOnly("_events_list")
    writes: _FilledListOnly[bytes] = _FilledListOnly("_writes_list")

    def process_extensions(self, headers: Headers) -> tuple[str | None, list[Extension]]:
        header, accepted = super().process_extensions(headers)
        return header, accepted or _NO_EXTENSIONS

    def accept(self, request: Request) -> Response:
        """websockets' answer to a valid handshake without extensions or subprotocol, built
        without its per-call costs: the date formatted once a second, the headers filled
        without checking values written here. Anything else goes through websockets' own
        ``accept``, which then also makes (and logs) its refusals."""
        accept_header = usual_accept_header(self, request)
        if accept_header is None:  # not the usual shape: websockets' own checks decide
            try:
                accept_header, extensions_header, protocol_header = self.process_request(request)
            except Exception:
                return super().accept(request)
            if extensions_header is not None or protocol_header is not None:
                return super().accept(request)
        self.accept_called = True
        headers = headers_from(
            [
                ("Date", _http_date()),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", accept_header),
            ]
        )
        return _UsualResponse(101, "Switching Protocols", headers)

    def receive_data(self, data: bytes | bytearray) -> None:
        if self.parser is None:
            self._start_parser()
        super().receive_data(data)

    def receive_eof(self) -> None:
        if self.parser is None and (self.reader is None or not self.reader.eof):
            self._start_parser()
        super().receive_eof()

    def discard(self) -> Generator[None]:
        # The other generator that reads the stream (after fail(), a refused handshake or a
        # close frame), started by websockets at any time: it gets a reader too.
        if self.reader is None:
            self.reader = StreamReader()
        return super().discard()

    def _start_parser(self) -> None:
        if self.reader is None:
            self.reader = StreamReader()
        self.parser = self.parse()
        next(self.parser)


#: A usual handshake request's fields: what the checks at import give websockets' own code and
#: netrun-ws's alike.
_PROBE_FIELDS = {
    "Host": "h",
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}

#: ``Sec-WebSocket-Key`` values that are the base64 of 16 bytes with its unused bits zero (what
#: clients send); any other key, valid or not, is left to websockets' own check.
_USUAL_KEY = re.compile(r"[A-Za-z0-9+/]{21}[AQgw]==")


_SELECT_SUBPROTOCOL = ServerProtocol.select_subprotocol


def _usual_accept_header(conn: ServerProtocol, request: Request) -> str | None:
    """What ``conn.process_request(request)`` returns as ``Sec-WebSocket-Accept`` for a usual
    handshake - a GET over HTTP/1.1 with one ``Connection: Upgrade``, one ``Upgrade: websocket``,
    one key as clients make them, version 13, at most one ``Origin``, no extension and no
    subprotocol offered, to a protocol that checks no origin and offers no subprotocol - having
    set what it sets (``origin``, ``extensions``, ``subprotocol``); None, setting nothing, for
    anything else. websockets' own check parses each header's grammar in Python (about 50,000
    instructions per connection); a request of this shape passes it with these values (the
    guard test compares the two over many requests)."""
    if (
        request.method != "GET"
        or request.protocol != "HTTP/1.1"
        or conn.origins is not None
        or conn.available_subprotocols
        # A select_subprotocol given to the protocol (a method of its own). Not read through
        # vars(): that would give the protocol a dict, bigger and slower to read than its
        # attribute values (about 800 instructions more per message).
        or getattr(conn.select_subprotocol, "__func__", None) is not _SELECT_SUBPROTOCOL
    ):
        return None
    fields = request.headers._dict
    connection = fields.get("connection")
    upgrade = fields.get("upgrade")
    key = fields.get("sec-websocket-key")
    origin = fields.get("origin")
    if (
        connection is None
        or len(connection) != 1
        or connection[0].lower() != "upgrade"
        or upgrade is None
        or len(upgrade) != 1
        or upgrade[0].lower() != "websocket"
        or key is None
        or len(key) != 1
        or _USUAL_KEY.fullmatch(key[0]) is None
        or fields.get("sec-websocket-version") != ["13"]
        or "sec-websocket-extensions" in fields
        or "sec-websocket-protocol" in fields
        or (origin is not None and len(origin) != 1)
    ):
        return None
    conn.origin = origin[0] if origin is not None else None  # type: ignore[assignment]
    conn.extensions = _NO_EXTENSIONS
    conn.subprotocol = None
    return accept_key(key[0])


#: The last fields :func:`usual_answer` was given, and their lines: uvicorn makes a new list
#: of its default headers once a second.
_fields_lines: tuple[object, bytes] = (None, b"")


def _lines(fields: list[tuple[bytes, bytes]]) -> bytes:
    """``fields`` as the header lines websockets writes once they are set on its ``Headers``
    (name lowercased, as uvicorn sets them), each value checked by that ``Headers``."""
    global _fields_lines
    if fields is not _fields_lines[0]:
        headers = Headers()
        for name, value in fields:
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")  # checks value
        _fields_lines = (fields, str(headers).encode("iso-8859-1")[:-2])  # without the end
    return _fields_lines[1]


def _usual_answer(
    conn: ServerProtocol, response: Response, fields: list[tuple[bytes, bytes]]
) -> bytes | None:
    """What ``conn.send_response`` queues for ``response`` once its Date is replaced by
    ``fields`` (uvicorn's default headers, as uvicorn's accept sets them), with ``conn`` opened
    as it opens it; None, having done nothing, for any answer but a usual handshake's (built by
    :meth:`ParsedRequestServerProtocol.accept`), or while websockets logs at debug level.
    Deleting a field and serializing the rest is about 30,000 instructions per connection in
    websockets' ``Headers``; this is the four fields of that answer written at once."""
    if (
        type(response) is not _UsualResponse
        or not isinstance(conn, ParsedRequestServerProtocol)
        or conn.debug
        or conn.state is not State.CONNECTING
        or conn._writes_list  # anything queued (read past ``writes``, which would make a list)
    ):
        return None
    accept = response.headers._dict["sec-websocket-accept"][0]
    data = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: %s\r\n%s\r\n" % (accept.encode("ascii"), _lines(fields))
    )
    conn.state = State.OPEN
    conn.logger.info("connection open")
    return data


def _no_answer(
    conn: ServerProtocol, response: Response, fields: list[tuple[bytes, bytes]]
) -> bytes | None:
    return None


def _answer_builder() -> Callable[
    [ServerProtocol, Response, list[tuple[bytes, bytes]]], bytes | None
]:
    """:func:`_usual_answer` where it writes what websockets writes for the answer with its
    Date replaced (the bytes, and the protocol's state), on live protocols; otherwise one that
    answers nothing, and websockets' ``send_response`` writes every answer."""
    fields = _PROBE_FIELDS
    defaults = [(b"date", b"Thu, 01 Jan 2026 00:00:00 GMT"), (b"server", b"uvicorn")]
    try:
        for more in ([], defaults):
            ours = ParsedRequestServerProtocol()
            answer = _usual_answer(ours, ours.accept(Request("/", Headers(fields))), more)
            theirs = ParsedRequestServerProtocol()
            response = theirs.accept(Request("/", Headers(fields)))
            del response.headers["Date"]
            for name, value in more:
                response.headers[name.decode("latin-1").lower()] = value.decode("latin-1")
            theirs.send_response(response)
            if (answer, ours.state) != (b"".join(theirs.data_to_send()), theirs.state):
                return _no_answer
    except Exception:
        return _no_answer
    return _usual_answer


def _not_usual(conn: ServerProtocol, request: Request) -> str | None:
    return None


def _usual_builder() -> Callable[[ServerProtocol, Request], str | None]:
    """:func:`_usual_accept_header` where it gives what websockets' ``process_request`` gives
    (the accept value, and the origin, extensions and subprotocol it sets), on live protocols
    for usual requests, and leaves the others to it; otherwise a check that takes nothing, and
    websockets' own serves every request."""
    usual = _PROBE_FIELDS
    taken = [usual, usual | {"Origin": "https://a.example", "Upgrade": "WebSocket"}]
    left = [
        usual | {"Connection": "keep-alive, Upgrade"},
        usual | {"Sec-WebSocket-Version": "8"},
        usual | {"Sec-WebSocket-Protocol": "chat"},
        usual | {"Sec-WebSocket-Extensions": "permessage-deflate"},
    ]
    try:
        for fields in taken:
            ours, theirs = ParsedRequestServerProtocol(), ServerProtocol()
            request = Request("/", Headers(fields))
            answer = _usual_accept_header(ours, request)
            if (answer, None, None) != theirs.process_request(request) or (
                ours.origin,
                list(ours.extensions),
                ours.subprotocol,
            ) != (theirs.origin, theirs.extensions, theirs.subprotocol):
                return _not_usual
        for fields in left:
            if _usual_accept_header(ParsedRequestServerProtocol(), Request("/", Headers(fields))):
                return _not_usual
    except Exception:
        return _not_usual
    return _usual_accept_header


#: The settings :func:`_quick_init_as_websockets` takes (those uvicorn's protocol passes).
_QUICK_INIT_SETTINGS = frozenset({"extensions", "max_size", "logger"})


def _quick_init_as_websockets(
    conn: ParsedRequestServerProtocol,
    extensions: Any = None,
    max_size: int | None = 2**20,
    logger: Any = None,
) -> None:
    """What ``ServerProtocol.__init__`` sets up for a server connection without origins,
    subprotocols or a ``select_subprotocol`` (uvicorn's), in its order (so that every instance's
    dict shares its keys), without the parts it would throw away: the random UUID nobody keeps
    (``id``, above), the frame parser it starts and its reader (let go at once, above: both are
    made at the first bytes) and the getLogger call for a logger it is given. About 30,000
    instructions fewer per connection."""
    if logger is None:
        logger = _SERVER_LOGGER
    conn.logger = logger
    conn.debug = logger.isEnabledFor(logging.DEBUG)
    conn.side = Side.SERVER
    conn.state = State.CONNECTING
    conn.max_message_size, conn.max_fragment_size = max_size, None
    conn.current_size = None
    conn.expect_continuation_frame = False
    conn.origin = None
    conn.extensions = []
    conn.subprotocol = None
    conn.close_rcvd = None
    conn.close_sent = None
    conn.close_rcvd_then_sent = None
    conn.handshake_exc = None
    conn.eof_sent = False
    conn.reader = None  # type: ignore[assignment]  # made with the parser, at the first bytes
    conn.events = []
    conn.writes = []
    conn.parser = None  # type: ignore[assignment]
    conn.parser_exc = None
    conn.origins = None
    conn.available_extensions = extensions
    conn.available_subprotocols = None
    conn.accept_called = False


_SERVER_LOGGER = logging.getLogger("websockets.server")


def _quick_init_builder() -> Callable[..., None] | None:
    """:func:`_quick_init_as_websockets` where it sets up what websockets' own ``__init__``
    does, for the settings uvicorn passes (compared attribute by attribute, in order, on live
    protocols); None otherwise, and websockets' ``__init__`` serves."""
    settings: list[dict[str, Any]] = [
        {},
        {"max_size": 65536, "logger": logging.getLogger("uvicorn.error")},
        {"extensions": [ServerPerMessageDeflateFactory()], "max_size": None},
    ]
    try:
        for setting in settings:
            quick = ParsedRequestServerProtocol.__new__(ParsedRequestServerProtocol)
            _quick_init_as_websockets(quick, **setting)
            stock = ParsedRequestServerProtocol.__new__(ParsedRequestServerProtocol)
            ServerProtocol.__init__(stock, **setting)
            if type(stock.reader) is not StreamReader:
                return None
            stock.parser.close()  # as ParsedRequestServerProtocol.__init__ does after it
            stock.parser = None  # type: ignore[assignment]
            stock.reader = None  # type: ignore[assignment]
            ours, theirs = vars(quick), vars(stock)
            if list(ours) != list(theirs) or any(ours[name] != theirs[name] for name in ours):
                return None
    except Exception:
        return None
    return _quick_init_as_websockets


#: What an idle connection without extensions holds instead of an empty list of its own.
_NO_EXTENSIONS: list[Extension] = ()  # type: ignore[assignment]

#: How a :class:`ParsedRequestServerProtocol` is set up, when websockets' ``__init__`` is not.
_quick_init: Callable[..., None] | None = _quick_init_builder()

#: ``usual_accept_header(conn, request)``: the ``Sec-WebSocket-Accept`` value of a usual
#: handshake, its negotiation done as websockets' ``process_request`` does it; else None.
usual_accept_header: Callable[[ServerProtocol, Request], str | None] = _usual_builder()

#: ``usual_answer(conn, response, fields)``: the bytes of a usual handshake's answer with its
#: Date replaced by ``fields``, ``conn`` opened; None for any other answer (send_response then).
usual_answer: Callable[[ServerProtocol, Response, list[tuple[bytes, bytes]]], bytes | None] = (
    _answer_builder()
)


try:  # the C function websockets itself unmasks with, when its wheel ships it
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # pragma: no cover - a build without the extension
    from websockets.utils import apply_mask as _apply_mask

#: ``apply_mask(data, mask) -> bytes``: XOR ``data`` with the 4-byte ``mask`` (RFC 6455 5.3).
apply_mask: Callable[[bytes, bytes], bytes] = _apply_mask

_AT_EOF = StreamReader.at_eof.__code__


def parser_idle(conn: Protocol) -> bool:
    """Whether ``conn``'s frame parser waits for the first byte of a frame (or was let go there),
    with nothing buffered, no fragmented message open and no debug logging: bytes handed to it
    now start a frame, and a whole final data frame would only be appended to its events."""
    parser = conn.parser
    if parser is not None:
        waiting = parser.gi_yieldfrom  # type: ignore[attr-defined]
        if waiting is None or waiting.gi_code is not _AT_EOF:
            return False
    reader = conn.reader
    return conn.current_size is None and (reader is None or not reader.buffer) and not conn.debug


_PARSE = Protocol.parse.__code__


def drop_idle_parser(conn: Protocol) -> None:
    """Let go of an open :class:`ParsedRequestServerProtocol`'s frame parser, and of the stream
    reader it reads from, while it waits between frames: a connection that is not reading a
    frame keeps no generator and no reader (with its buffer)."""
    parser = conn.parser
    if (
        parser is not None
        and isinstance(conn, ParsedRequestServerProtocol)
        and parser.gi_code is _PARSE  # type: ignore[attr-defined]
        and conn.state is State.OPEN
        and parser_idle(conn)
    ):
        parser.close()
        conn.parser = None  # type: ignore[assignment]
        conn.reader = None  # type: ignore[assignment]  # empty and open: a new one reads on


def _fast_path_refusal() -> str | None:
    """The parser-state probe behind :func:`parser_idle`, on a live protocol."""
    conn = ParsedRequestServerProtocol()
    conn.state = State.OPEN
    conn._start_parser()
    if not parser_idle(conn):
        return "websockets' frame parser no longer waits in StreamReader.at_eof between frames"
    frame = b"\x81\x82\x01\x02\x03\x04" + apply_mask(b"hi", b"\x01\x02\x03\x04")
    conn.receive_data(frame[:3])  # a frame started: the parser is no longer idle
    if parser_idle(conn):
        return "websockets' frame parser state can no longer be told from outside"
    drop_idle_parser(conn)  # not idle: kept
    conn.receive_data(frame[3:])
    events = conn.events_received()
    if not parser_idle(conn) or conn.data_to_send():
        return "websockets' frame parser does more than queue a whole text frame"
    drop_idle_parser(conn)
    if conn.parser is not None:
        return "websockets' frame parser no longer waits between frames where it can be let go"
    conn.receive_data(frame)  # a fresh parser reads on where the idle one stood
    events += conn.events_received()
    if [(type(e), getattr(e, "opcode", None), getattr(e, "data", None)) for e in events] != [
        (Frame, Opcode.TEXT, b"hi")
    ] * 2:
        return "websockets' frame parser no longer gives a whole text frame as one event"
    return None


def _accept_refusal() -> str | None:
    """Whether :meth:`ParsedRequestServerProtocol.accept` answers a usual handshake as
    websockets' own ``accept`` does (the date aside), on live protocols."""
    fields = _PROBE_FIELDS
    ours = ParsedRequestServerProtocol().accept(Request("/", Headers(fields)))
    theirs = ServerProtocol().accept(Request("/", Headers(fields)))
    if (ours.status_code, ours.reason_phrase, ours.body) != (
        theirs.status_code,
        theirs.reason_phrase,
        theirs.body,
    ) or [name for name, _ in ours.headers.raw_items()] != [
        name for name, _ in theirs.headers.raw_items()
    ]:
        return "websockets' ServerProtocol.accept no longer answers as netrun-ws's does"
    del ours.headers["Date"], theirs.headers["Date"]
    if ours.headers != theirs.headers:
        return "websockets' ServerProtocol.accept no longer answers as netrun-ws's does"
    return None


def _lean_lists_refusal() -> str | None:
    """The ``events`` and ``writes`` properties of :class:`ParsedRequestServerProtocol`, on a live
    protocol: what websockets hands out is what it read and wrote, and nothing is kept after."""
    conn = ParsedRequestServerProtocol()
    conn.state = State.OPEN
    ping = b"\x89\x82\x01\x02\x03\x04" + apply_mask(b"hi", b"\x01\x02\x03\x04")
    conn.receive_data(ping)
    events, writes = conn.events_received(), conn.data_to_send()
    if [(type(e), getattr(e, "opcode", None), getattr(e, "data", None)) for e in events] != [
        (Frame, Opcode.PING, b"hi")
    ] or writes != [b"\x8a\x02hi"]:
        return "websockets no longer hands out a ping and its pong through events and writes"
    conn.send_ping(b"p")
    conn.send_ping(b"q")
    if conn.data_to_send() != [b"\x89\x01p", b"\x89\x01q"]:
        return "websockets no longer gathers its output in writes"
    if conn._events_list is not None or conn._writes_list is not None:
        return "websockets keeps the lists it reads as events or writes in another way"
    return None


def release_parser(conn: Protocol) -> None:
    """Break the cycles a finished websockets protocol keeps: its frame parser is a suspended
    generator whose frame refers to the protocol, and the exception that ended a parse keeps that
    frame in its traceback. Left alone, a closed connection's protocol, reader, buffers and events
    wait for a full collection of the cyclic collector (a generator's finaliser breaks the cycle
    there), which a busy node runs rarely; closed, refcounting frees them at once."""
    parser = getattr(conn, "parser", None)
    if inspect.isgenerator(parser):
        parser.close()
    error = conn.parser_exc
    if error is not None:
        error.__traceback__ = None


def _state_reader() -> Callable[[Protocol], State]:
    """``conn.state`` without the property's Python frame (a C ``attrgetter`` of ``_state``),
    where the property still just returns that attribute; the property otherwise."""
    direct: Callable[[Protocol], State] = attrgetter("_state")
    conn = ParsedRequestServerProtocol()
    try:
        for state in (State.OPEN, State.CLOSING, State.CLOSED):
            conn.state = state
            if direct(conn) is not state:
                break
        else:
            return direct
    except AttributeError:
        pass
    return attrgetter("state")


#: ``connection_state(conn)`` is ``conn.state``: read once per recipient of a broadcast.
connection_state = _state_reader()


def refusal() -> str | None:
    """Why this websockets is not the one netrun-ws's protocol was built on, or None."""
    if reason := TESTED.refusal():
        return reason
    parsers = (Protocol.parse, ServerProtocol.parse)
    if not all(map(inspect.isgeneratorfunction, parsers)) or parsers[0] is parsers[1]:
        return "websockets' ServerProtocol.parse no longer reads the request before the frames"
    if not (isinstance(MAX_LINE_LENGTH, int) and isinstance(MAX_NUM_HEADERS, int)):
        return "websockets' HTTP parser limits are no longer plain numbers"
    if not inspect.isgeneratorfunction(StreamReader.at_eof):
        return "websockets' StreamReader.at_eof is no longer a generator"
    return _accept_refusal() or _fast_path_refusal() or _lean_lists_refusal()
