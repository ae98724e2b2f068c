"""netrun-ws's websocket protocol for uvicorn: uvicorn's sans-I/O protocol, tuned for many frames.

``netrun-ws run`` serves websockets with :class:`NetrunWebSocketProtocol`
(``uvicorn.Config(ws=...)``). It is uvicorn's own ``websockets-sansio`` protocol (handshake checked
and frames parsed by the ``websockets`` library) with these changes, each measured in ``bench/``
(docs/performance.md):

- **The upgrade request is not parsed twice.** uvicorn's HTTP protocol writes the request
  httptools parsed back into bytes for the websocket protocol to parse again, line by line.
  :mod:`~netrun_ws.transport.http` hands over the parsed fields instead;
  under any other HTTP protocol, :func:`parse_upgrade_request` splits the bytes in one pass. Both
  follow websockets' grammar and limits and leave anything unusual to websockets' own parser,
  whose refusals of an incomplete request (431, 414) are written, not left unsent.
- **A lean handshake.** uvicorn's per-connection state is set up without the queue and event
  this class replaces, in slots, with the keepalive pings on the loop's timer heap
  (:mod:`netrun_ws.timers`), websockets' protocol starts at the frames rather than priming a request
  parser first, and the ``websocket.accept`` answer skips formatting an access-log line that is
  not logged. Checking the handshake and answering it stay websockets' and uvicorn's.
- **Writes are corked.** Every frame written during one event-loop iteration leaves in one
  ``transport.write`` at the end of it (or at once past :data:`CORK_LIMIT` bytes), so a client with
  eight requests in flight gets its eight replies in one syscall, not eight.
- **Reading pauses on bytes, not on every message.** uvicorn stops reading after each message until
  the app has taken it; here reading stops only when :data:`READ_LIMIT` bytes of received messages
  wait for the app, which bounds memory the same way without a pause/resume pair per batch.
- **A synchronous send path.** The ASGI scope carries ``scope["extensions"]["netrun.direct"]``, this
  protocol object, whose :meth:`send_now` frames and queues a message without a coroutine, a task or
  an await; :class:`netrun_ws.connection.Connection` uses it when present, and the plain ASGI
  ``send`` otherwise (any other server, or ``server.ws_protocol: uvicorn``).
- **The app's call may end before the connection.** An app that hands the rest of a connection
  to :meth:`NetrunWebSocketProtocol.serve_after_app` returns with the socket open; the protocol
  runs what it was handed in tasks of its own, one per wake when that parks between events, so
  an idle connection keeps no coroutine (the host does this once a connection is welcomed).

Behaviour on the wire (handshake, close codes, keepalive pings, limits) is uvicorn's, except that
a request websockets refuses before it is complete gets that refusal (uvicorn sends nothing), a
protocol error's close is lingering, and the answer to a client's close frame waits until the app
is done with the connection, so replies to the messages before it are not dropped.

The uvicorn and websockets internals this builds on are imported from
:mod:`netrun_ws._upstream.uvicorn` and :mod:`netrun_ws._upstream.websockets`, which say what it
relies on; ``netrun-ws run`` uses this protocol only where both fences are open
(:func:`netrun_ws.transport.netrun_protocols_usable`), uvicorn's own otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ClassVar
from urllib.parse import unquote

from uvicorn import Config
from websockets.exceptions import InvalidState
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import CloseCode as WsCloseCode
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from netrun_ws._upstream.uvicorn import (
    STATE,
    ClientDisconnected,
    ServerState,
    WebSocketsSansIOProtocol,
    get_client_addr,
    get_path_with_query_string,
)
from netrun_ws._upstream.websockets import (
    MAX_LINE_LENGTH,
    MAX_NUM_HEADERS,
    ParsedRequestServerProtocol,
    apply_mask,
    connection_state,
    drop_idle_parser,
    headers_from,
    parser_idle,
    release_parser,
    usual_answer,
)
from netrun_ws.connection import DIRECT_EXTENSION
from netrun_ws.timers import Timer, timers_for
from netrun_ws.transport.shared_headers import learn_field, share_headers
from netrun_ws.wire import OPCODE_BINARY, OPCODE_TEXT, frame_header

_OPEN = State.OPEN

#: Corked bytes past which a write leaves at once instead of at the end of the loop iteration.
CORK_LIMIT = 64 * 1024
#: Bytes of received messages waiting for the app past which the socket stops being read.
READ_LIMIT = 64 * 1024
#: Seconds a connection failed by a protocol error (1002, 1007, 1009) keeps reading, and
#: dropping, what the client still sends after the close frame, unless the client closes first.
LINGER_SECONDS = 2.0
#: Bytes of one read handed to websockets' parser at a time: a read of tiny frames (a ping
#: flood) is parsed a slice at a time, the frame budget checked in between.
PARSE_SLICE = 16 * 1024

# RFC 9110 field name (token) and field value bytes, as websockets' own parser accepts them:
# ``bytes.translate`` deleting these leaves the bytes outside them (a check in C, for all fields
# at once).
_TOKEN_BYTES = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VALUE_BYTES = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])


def parse_upgrade_request(data: bytes) -> Request | None:
    """The upgrade request uvicorn hands over (rebuilt from what httptools parsed), as the
    ``Request`` websockets' parser would give, in one pass over a single buffer.

    None for anything but a complete, plain GET request within websockets' limits: that input
    then goes through websockets' own parser, which also produces its error responses.
    """
    if not data.endswith(b"\r\n\r\n"):
        return None
    lines = data[:-4].split(b"\r\n")
    if max(map(len, lines)) + 2 > MAX_LINE_LENGTH:  # with its CRLF
        return None
    method, _, rest = lines[0].partition(b" ")
    target, _, protocol = rest.partition(b" ")
    if protocol != b"HTTP/1.1":
        return None
    fields = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            return None
        fields.append((name, value))
    return request_from_fields(method.decode("latin-1"), target, fields)


def request_from_fields(
    method: str, target: bytes, fields: list[tuple[bytes, bytes]]
) -> Request | None:
    """The ``Request`` websockets' parser would make of a request line's method and target and
    its header fields (name, value) - or None where that parser would refuse the request or
    read it differently (not a plain GET, a body, a line over its 8 KB, over 128 fields, bytes
    outside the RFC 9110 grammar): the request then goes through websockets' own parser."""
    if method != "GET" or not target.isascii() or len(fields) > MAX_NUM_HEADERS:
        return None
    if len(target) + 15 > MAX_LINE_LENGTH:  # "GET " + target + " HTTP/1.1" + CRLF
        return None
    names = [name for name, _ in fields]
    joined_names = b"".join(names)
    joined_values = b"".join([value for _, value in fields])
    # Each line "name: value" + CRLF within websockets' limit: all of them together usually are
    # (two lengths instead of a join per field); past that, each line is measured.
    if len(joined_names) + len(joined_values) + 4 > MAX_LINE_LENGTH and (
        max(len(name) + len(value) for name, value in fields) + 4 > MAX_LINE_LENGTH
    ):
        return None
    # The grammar websockets' parser and its Headers hold names and values to, checked here
    # for every field (headers_from checks none). The values as httptools gave them: the
    # spaces and tabs stripped below are bytes the grammar allows anyway.
    if (
        not all(names)
        or joined_names.translate(None, _TOKEN_BYTES)
        or joined_values.translate(None, _VALUE_BYTES)
    ):
        return None
    # websockets refuses a body on the handshake: let it say so. A longer name that contains
    # either one goes that way too (slower, never wrong).
    lowered = joined_names.lower()
    if b"transfer-encoding" in lowered or b"content-length" in lowered:
        return None
    pairs = [
        (name.decode("ascii"), value.strip(b" \t").decode("latin-1")) for name, value in fields
    ]
    return Request(target.decode("ascii"), headers_from(pairs))


#: ``frames`` between messages: uvicorn starts a message's list at its first frame (and only
#: appends continuation frames to that), so an idle connection keeps no empty list of its own.
_NO_FRAMES: list[bytes] = ()  # type: ignore[assignment]
#: A :class:`ReceiveQueue`'s events before the first and while the connection is parked (an
#: idle connection's usual state): one empty tuple for all, not an empty list each (56 bytes).
_NO_EVENTS: list[tuple[Any, int]] = ()  # type: ignore[assignment]


class _Flusher:
    """Flushes, once per event-loop iteration, every corked transport written to during it: a
    broadcast to N connections schedules one callback, not N."""

    __slots__ = ("_loop", "_pending", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[CorkedTransport] = []
        self._scheduled = False

    def add(self, transport: CorkedTransport) -> None:
        self._pending.append(transport)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for transport in pending:
            # CorkedTransport.flush_pending, inline: after a broadcast this runs once per
            # recipient, and two method calls each were a tenth of a delivery's cost.
            transport._pending = False
            buffer = transport._buffer
            if not buffer:
                continue
            data = buffer[0] if len(buffer) == 1 else b"".join(buffer)
            buffer.clear()
            transport._size = 0
            real = transport.transport
            if not real.is_closing():
                real.write(data)


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher] = (
    weakref.WeakKeyDictionary()
)


def _flusher_for(loop: asyncio.AbstractEventLoop) -> _Flusher:
    flusher = _flushers.get(loop)
    if flusher is None:
        flusher = _flushers[loop] = _Flusher(loop)
    return flusher


class CorkedTransport:
    """The real transport, with writes gathered until the end of the loop iteration."""

    __slots__ = ("_buffer", "_flusher", "_pending", "_size", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._flusher = _flusher_for(loop)
        self._buffer: list[bytes] = []
        self._size = 0
        self._pending = False  # registered with the flusher for this iteration

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._buffer.append(data)
        self._size += len(data)
        if self._size >= CORK_LIMIT:
            self.flush()
        elif not self._pending:
            self._pending = True
            self._flusher.add(self)

    def writelines(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush_pending(self) -> None:
        self._pending = False
        self.flush()

    def flush(self) -> None:
        buffer = self._buffer
        if not buffer:
            return
        data = buffer[0] if len(buffer) == 1 else b"".join(buffer)
        buffer.clear()
        self._size = 0
        if not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def write_eof(self) -> None:
        """Flush, then close the writing half (a FIN after the last byte)."""
        self.flush()
        if self.transport.can_write_eof() and not self.transport.is_closing():
            self.transport.write_eof()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()


class ReceiveQueue:
    """The ASGI receive events of one connection: a list, and a future only while the app waits.

    Stands in for the ``asyncio.Queue`` of uvicorn's protocol (its ``put_nowait`` and ``get``)
    without its per-call overhead or its two deques (about 1.2 KB per idle connection), and
    counts the bytes of received messages waiting.
    """

    __slots__ = ("_events", "_loop", "_waiter", "waiting_bytes", "wake", "wake_argument")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # (event, its size in bytes); short (bounded by READ_LIMIT), so pop(0) is cheap. A list
        # from the first event until the connection parks (then _NO_EVENTS again).
        self._events: list[tuple[Any, int]] = _NO_EVENTS
        self._waiter: asyncio.Future[None] | None = None
        #: Called as ``wake(wake_argument)`` (once, then cleared) by the next put while there
        #: is no waiter (see :meth:`park`): how a parked connection is woken.
        self.wake: Callable[[Any], None] | None = None
        self.wake_argument: Any = None
        self.waiting_bytes = 0

    def put_nowait(self, event: Any, size: int = 0) -> None:
        """Queue ``event``; ``size`` is the message's size on the wire (0 for other events)."""
        events = self._events
        if events is _NO_EVENTS:
            self._events = [(event, size)]
        else:
            events.append((event, size))
        self.waiting_bytes += size
        waiter = self._waiter
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
        elif (wake := self.wake) is not None:  # parked (the waiter is dropped then)
            argument = self.wake_argument
            self.wake = self.wake_argument = None
            wake(argument)

    def get_nowait(self) -> Any | None:
        """The next event, or None when there is none yet."""
        if not self._events:
            return None
        event, size = self._events.pop(0)
        self.waiting_bytes -= size
        return event

    def ready(self) -> asyncio.Future[None]:
        """A future that completes once an event is waiting (at once if one is). Awaiting it
        directly, rather than a coroutine, keeps an idle connection's await chain short."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = self._loop.create_future()
            if self._events:
                waiter.set_result(None)
        return waiter

    def park(self, wake: Callable[[Any], None], argument: Any) -> None:
        """Call ``wake(argument)`` at the next put (nobody waits on :meth:`ready` any more). A
        function and its argument, not a bound method: a parked connection makes no object."""
        if not self._events:  # nothing waits (or park would not be called): no list kept
            self._events = _NO_EVENTS
        self._waiter = None
        self.wake, self.wake_argument = wake, argument

    async def get(self) -> Any:
        while not self._events:
            await self.ready()
        return self.get_nowait()


class _PauseMirror:
    """Where a detached :class:`WritableFlag` mirrors to: nobody reads it any more."""

    __slots__ = ("write_paused",)

    def __init__(self) -> None:
        self.write_paused = False


class WritableFlag:
    """Stands in for uvicorn's ``asyncio.Event`` that tracks whether the socket takes writes
    (``is_set``/``set``/``clear``/``wait``), without a deque of waiters per connection.

    Every change is mirrored into its protocol's plain ``write_paused`` attribute, read for every
    frame sent; uvicorn sets and clears the flag from several places (pause/resume_writing,
    connection_lost), and this keeps the two from ever disagreeing.
    """

    __slots__ = ("_loop", "_protocol", "_set", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: NetrunWebSocketProtocol) -> None:
        self._loop = loop
        self._protocol: NetrunWebSocketProtocol | _PauseMirror = protocol
        self._set = True
        self._waiter: asyncio.Future[None] | None = None

    def detach(self) -> None:
        """Stop mirroring into the protocol (its connection is lost): the protocol and this flag
        refer to each other, and a cycle would keep a closed connection's protocol, parser and
        buffers alive until the cyclic garbage collector runs, which under churn is late."""
        self._protocol = _PauseMirror()

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        self._protocol.write_paused = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False
        self._protocol.write_paused = True

    async def wait(self) -> None:
        while not self._set:
            if self._waiter is None:
                self._waiter = self._loop.create_future()
            await asyncio.shield(self._waiter)  # one waiter's cancellation spares the others


_UVICORN_ERROR_LOG = logging.getLogger("uvicorn.error")
#: The server's own addresses, one tuple each for all its connections (at most a few).
_SERVER_ADDRESSES: dict[Any, Any] = {}


#: The paths connections were accepted at (a few: "/ws"), as one ``(path, raw_path)`` pair each.
_ACCEPTED_PATHS: dict[bytes, tuple[str, bytes]] = {}


def _share_path(scope: dict[str, Any]) -> None:
    """Put in ``scope`` the one equal ``path`` and ``raw_path`` kept for every connection accepted
    at that path (uvicorn makes both anew for each request, about 90 bytes): only for paths an
    app accepted, and at most 64 of them, so made-up paths cannot crowd out the real ones."""
    path, raw_path = scope["path"], scope["raw_path"]
    known = _ACCEPTED_PATHS
    shared = known.get(raw_path)
    if shared is None:
        if len(known) < 64 and type(path) is str and type(raw_path) is bytes:
            known[raw_path] = (path, raw_path)
    elif shared[0] == path:
        scope["path"], scope["raw_path"] = shared


def _shared_server_address(address: Any) -> Any:
    """``address`` (the ``(host, port)`` a connection reached), as the one equal tuple kept
    for every connection to it: a connection keeps only its client's address of its own."""
    known = _SERVER_ADDRESSES
    if address is None or (len(known) >= 64 and address not in known):  # bounded
        return address
    return known.setdefault(address, address)


#: uvicorn's permessage-deflate offer (the settings of its own websockets protocols).
_DEFLATE = (
    ServerPerMessageDeflateFactory(
        server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
    ),
)


def _answer_held_close(protocol: NetrunWebSocketProtocol) -> None:
    protocol.held_close_timer = None  # fired
    protocol.answer_held_close()


def _send_keepalive_ping(protocol: NetrunWebSocketProtocol) -> None:
    protocol.send_keepalive_ping()


class NetrunWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol with corked writes and a direct send path."""

    transport: CorkedTransport  # type: ignore[assignment]

    # Every attribute in a slot: with some fifty of them the instance dict would not share its
    # keys (CPython shares up to 30) and cost about 1.2 KB per connection; slots cost 8 bytes
    # each. uvicorn's methods set the same names and find the slots first. Anything a release
    # adds outside STATE (the fence refuses such a release) would still land in a dict.
    __slots__ = (
        *sorted(STATE),
        "frame_tokens",
        "handed_over",
        "held_close",
        "held_close_timer",
        "queue_full",
        "serving",
        "serving_argument",
        "request",
        "response",
        "scope",
        "throttled",
        "tokens_at",
        "unparsed",
        "write_paused",
    )

    #: Frames per second one connection may send, every frame counted (``limits.frames_per_second``
    #: and twice ``messages_per_second``, whichever is more; 0: no budget). A subclass made by
    #: :meth:`with_limits` sets it; past the budget, reading pauses until it refills.
    frames_per_second: float = 0.0
    #: Whether this protocol keeps the frame budget itself: the guard then puts no
    #: :class:`netrun_ws.transport.frames.FrameBudget` in front of it (its frames are not
    #: scanned twice).
    counts_frames: ClassVar[bool] = False

    @classmethod
    def with_limits(cls, frames_per_second: float) -> type[NetrunWebSocketProtocol]:
        """This protocol with a frame budget (what ``netrun-ws run`` gives uvicorn)."""
        attributes = {
            "__slots__": (),
            "frames_per_second": frames_per_second,
            "counts_frames": frames_per_second > 0,
        }
        return type(cls.__name__, (cls,), attributes)

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # The state uvicorn's __init__ sets up (netrun_ws._upstream.uvicorn.STATE), without
        # what this class replaces (its asyncio.Queue and asyncio.Event) and without a second
        # parser for the request: tests/upstream/test_uvicorn.py keeps the two in step.
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.logger = _UVICORN_ERROR_LOG
        self.root_path = config.root_path
        self.asgi_version = config.asgi_version
        self.app_state = app_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.default_headers = server_state.default_headers
        self.transport = None  # type: ignore[assignment]
        self.server = self.client = self.scheme = None  # type: ignore[assignment]
        self.queue: ReceiveQueue = ReceiveQueue(self.loop)  # type: ignore[assignment]
        self.handshake_initiated = self.handshake_complete = False
        self.close_sent = self.disconnected = self.read_paused = False
        self.close_timer = None
        self.close_timeout = 10.0
        self.initial_response = None
        self.conn = self._server_protocol(ParsedRequestServerProtocol)
        self.writable: WritableFlag = WritableFlag(self.loop, self)  # type: ignore[assignment]
        self.ping_interval = config.ws_ping_interval
        self.ping_timeout = config.ws_ping_timeout
        self.ping_timer = self.pong_timer = None
        self.pending_ping_payload = None
        self.ping_sent_at = self.last_ping_rtt = 0.0
        self.frames = _NO_FRAMES
        self.curr_msg_data_type = "bytes"
        # Reading is paused while received messages wait (queue_full) or the frame budget is
        # spent (throttled); read_paused says whether it is paused.
        self.queue_full = self.throttled = False
        self.frame_tokens = self.frames_per_second
        # A budget starts full: any time before now reads so (_charge caps the tokens at the
        # rate), and a constant is no float of its own per connection.
        self.tokens_at = 0.0
        self.unparsed = b""  # the rest of a read left while throttled
        self.write_paused = False  # kept by ``writable``
        self.request = self.response = None  # type: ignore[assignment]
        self.handed_over = False  # the app gave the connection to serve_after_app
        # The answer to the client's close frame, held until the app is done (handle_close).
        self.held_close: bytes | None = None
        self.held_close_timer: Timer | None = None
        # What the app handed over with it: serve(argument) serves the connection.
        self.serving: Callable[[Any], Coroutine[Any, Any, bool]] | None = None
        self.serving_argument: Any = None

    def _server_protocol(self, kind: type[ServerProtocol]) -> ServerProtocol:
        # uvicorn's settings for websockets' protocol, deflate included when configured. The
        # factory only reads its settings, so every connection shares one (as websockets' own
        # servers do), and no list at all without deflate.
        extensions = _DEFLATE if self.config.ws_per_message_deflate else None
        return kind(
            extensions=extensions, max_size=self.config.ws_max_size, logger=_UVICORN_ERROR_LOG
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.transport = CorkedTransport(transport, self.loop)  # type: ignore[arg-type]

    def adopt(self, http: Any) -> None:
        """``connection_made`` for a connection uvicorn's HTTP protocol upgrades: its transport
        and the addresses it already read (see :mod:`netrun_ws.transport.http`)."""
        self.connections.add(self)
        self.server, self.client = _shared_server_address(http.server), http.client
        self.scheme = "wss" if http.scheme == "https" else "ws"
        self.transport = CorkedTransport(http.transport, self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport._buffer.clear()  # nothing can be written any more
        self._drop_held_close()
        super().connection_lost(exc)
        # Break the cycles through this protocol, so that refcounting frees a closed connection
        # at once: its flag (after uvicorn set it for the senders still waiting), websockets'
        # frame parser and the scope's direct-send extension (read once, when the app's
        # connection was made).
        self.writable.detach()
        release_parser(self.conn)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope.get("extensions", {}).pop(DIRECT_EXTENSION, None)

    def data_received(self, data: bytes) -> None:
        if self.handshake_initiated:
            if self.unparsed:  # throttled: wait behind what is left
                self.unparsed += data
            elif len(data) <= PARSE_SLICE:
                self._receive(data)
            else:
                self._parse(data)
            return
        if type(self.conn) is ParsedRequestServerProtocol:
            request = parse_upgrade_request(data)
            if request is not None:
                self.handle_connect(request)
                return
            # Anything unusual: websockets' own parser reads it, and answers what it refuses.
            self.conn = self._server_protocol(ServerProtocol)
        self._receive(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            # websockets refused the request before it was complete (e.g. 431 for an oversize
            # header line) and queued its answer; uvicorn's protocol would never write it and
            # leave the client waiting.
            self.handshake_initiated = self.handshake_complete = self.close_sent = True
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()

    def _receive(self, data: bytes) -> None:
        """Read ``data`` (a whole read, or a slice of a large one): the whole frames at its start
        on the fast path (:meth:`_take_whole_frames`) while websockets' parser is idle, the rest
        through that parser."""
        conn = self.conn
        if conn.state is _OPEN and not conn.extensions and parser_idle(conn):
            data = self._take_whole_frames(data, conn.max_message_size)
            if not data:
                return
        conn.receive_data(data)
        # uvicorn drops the messages read before a protocol error when they came in the same
        # read as the error (not when they came in an earlier one); here they are delivered
        # whatever the reads, as the whole-frame path delivers them.
        self.handle_events()
        if conn.parser_exc is not None:
            self.handle_parser_exception()
        else:
            drop_idle_parser(conn)  # between frames: no generator kept while idle

    def handle_close(self, event: Frame) -> None:
        """The client's close frame. uvicorn answers it at once and closes the socket, so the
        app's replies to the messages that came before it (in the same read, or still being
        handled) are dropped. Here the answer websockets prepared is held until the app is done
        with the connection (its task ends, or it closes), at most ``close_timeout`` seconds,
        and replies written meanwhile go out first: RFC 6455 (5.5.1) lets an endpoint finish
        sending before it answers a close. With permessage-deflate, websockets frames the
        replies and refuses to once the close is received: uvicorn's way then."""
        conn = self.conn
        if self.close_sent or conn.extensions or self.transport.is_closing():
            super().handle_close(event)
            return
        close = conn.close_rcvd
        assert close is not None
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": close.code, "reason": close.reason}
        )
        self.held_close = b"".join(conn.data_to_send())
        self.stop_keepalive()  # closing: no more pings
        self.held_close_timer = timers_for(self.loop).call_later(
            self.close_timeout, _answer_held_close, self
        )

    def shutdown(self) -> None:
        # uvicorn's, at server shutdown; with a held answer the client has closed already, and
        # websockets refuses to start a close of its own: the answer goes out instead.
        if self.held_close is not None:
            self.answer_held_close()
            return
        super().shutdown()

    def answer_held_close(self) -> None:
        """Write the held answer to the client's close frame (if any) and close the socket."""
        held = self.held_close
        if held is None:
            return
        self._drop_held_close()
        if not self.transport.is_closing():
            self.transport.write(held)
            self.transport.close()

    def _drop_held_close(self) -> None:
        self.held_close = None
        timer = self.held_close_timer
        if timer is not None:
            self.held_close_timer = None
            timer.cancel()

    def handle_parser_exception(self) -> None:
        """The client broke the protocol (an oversize message, invalid UTF-8, a bad frame):
        send the close frame, then close *lingering*. uvicorn closes the socket right after the
        close frame; a client still sending (the rest of an oversize message, say) then gets a
        TCP reset, which can destroy that frame before the client reads it, so it sees 1006
        instead of the code. Here the writing half closes after the frame (a FIN), what still
        arrives is read and dropped (websockets discards it once the connection failed), and
        the socket closes when the client closes its side, or after :data:`LINGER_SECONDS`."""
        if self.close_timer is not None:
            return  # already closing: the timer, or the client's end of stream, finishes it
        close = self.conn.close_sent
        assert close is not None
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": close.code, "reason": close.reason}
        )
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        # Nothing more is parsed for the app; a paused socket must drain, not reset.
        self.throttled, self.unparsed = False, b""
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.transport.write_eof()
        self.close_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _parse(self, data: bytes) -> None:
        # A slice at a time, stopping when the frame budget is spent.
        for start in range(0, len(data), PARSE_SLICE):
            if self.throttled or self.disconnected:
                self.unparsed = data[start:]
                return
            self._receive(data[start : start + PARSE_SLICE])

    def _charge(self, frames: int) -> None:
        """Count ``frames`` received against the frame budget; pause reading when it is spent."""
        rate = self.frames_per_second
        now = self.loop.time()
        tokens = min(rate, self.frame_tokens + (now - self.tokens_at) * rate) - frames
        self.frame_tokens, self.tokens_at = tokens, now
        if tokens < 0 and not self.throttled:
            self.throttled = True
            self._sync_reading()
            self.loop.call_later(-tokens / rate, self._unthrottle)

    def _unthrottle(self) -> None:
        self.throttled = False
        if self.disconnected:
            return
        data, self.unparsed = self.unparsed, b""
        if data:
            self._parse(data)
        self._sync_reading()

    def _sync_reading(self) -> None:
        paused = self.queue_full or self.throttled
        if paused is not self.read_paused and not self.close_sent:
            self.read_paused = paused
            if paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def _take_whole_frames(self, data: bytes, max_size: int | None) -> bytes:
        """Deliver the whole, final, masked text and binary frames at the start of ``data`` (what
        a client sends, one or several per read) and return the bytes from the first frame this
        does not take: anything else (a control frame, a fragment, a frame cut by the read, a
        64-bit length, reserved bits, a frame over ``max_size``) goes to websockets' parser,
        which then starts at a frame boundary. Only while that parser is idle
        (:func:`~netrun_ws._upstream.websockets.parser_idle`), so both read the same frames."""
        pos, end, frames = 0, len(data), 0
        while end - pos >= 6:
            first, second = data[pos], data[pos + 1]
            if (first != 0x81 and first != 0x82) or second < 0x80:  # not FIN+data, or unmasked
                break
            length = second & 0x7F
            if length < 126:
                start = pos + 6
            elif length == 126 and end - pos >= 8:
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 8
            else:
                break
            stop = start + length
            if stop > end or (max_size is not None and length > max_size):
                break
            payload = apply_mask(data[start:stop], data[start - 4 : start])
            pos, frames = stop, frames + 1
            if not self._deliver(payload, first == 0x81):
                break  # the connection failed (invalid UTF-8): websockets discards the rest
        if frames and self.frames_per_second:  # these frames count against the budget too
            self._charge(frames)
        return data[pos:] if pos else data

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        # websockets negotiated the extensions while preparing its answer (conn.accept).
        self.plain_frames = not self.conn.extensions
        if not self.close_sent:  # the handshake request was valid: an ASGI scope exists
            scope = self.scope
            scope["headers"] = share_headers(scope["headers"])  # type: ignore[arg-type]
            if not scope["subprotocols"]:
                scope["subprotocols"] = ()  # an Iterable, as ASGI asks: no empty list each
            extensions: dict[str, Any] = scope["extensions"]
            extensions[DIRECT_EXTENSION] = self

    def connect_parsed(self, request: Request, fields: list[tuple[bytes, bytes]]) -> None:
        """:meth:`handle_connect` for a request handed over parsed (:mod:`.http`), whose header
        fields as httptools read them (names lowercased) are ``fields``: the scope's header list
        is made of those bytes, not encoded again from the request's strings (about 12,000
        instructions). Otherwise what uvicorn's ``handle_connect`` does (the guard test compares
        the two, accepted and refused)."""
        self.request = request
        conn = self.conn
        response = self.response = conn.accept(request)
        self.handshake_initiated = True
        self.plain_frames = not conn.extensions
        if response.status_code != 101:  # refused: answered, and closed, as uvicorn does
            self.handshake_complete = True
            self.close_sent = True
            conn.send_response(response)
            self.transport.write(b"".join(conn.data_to_send()))
            self.transport.close()
            return
        raw_path, _, query_string = request.path.partition("?")
        offered = request.headers.get_all("Sec-WebSocket-Protocol")
        subprotocols: Iterable[str] = ()
        if offered:
            subprotocols = [token.strip() for header in offered for token in header.split(",")]
        root_path = self.root_path
        # The direct channel in the extensions at once (handle_connect adds it after).
        extensions: dict[str, Any] = {"websocket.http.response": {}, DIRECT_EXTENSION: self}
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": root_path,
            "path": root_path + (unquote(raw_path) if "%" in raw_path else raw_path),
            "raw_path": root_path.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query_string.encode("ascii"),
            "headers": share_headers(fields),
            "subprotocols": subprotocols,
            "state": self.app_state.copy(),
            "extensions": extensions,
        }
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

    async def send(self, message: Any) -> None:
        if self.held_close is not None and message["type"] == "websocket.close":
            self.answer_held_close()  # the client closed first: the app is done with it
            return
        if (
            message["type"] == "websocket.accept"
            and not self.handshake_complete
            and self.initial_response is None
            and not self.disconnected
            and self.writable.is_set()
        ):
            self._accept(message)
            return
        await super().send(message)
        if self.initial_response is not None and self.close_sent and not self.handshake_complete:
            # A denial response is on the wire. uvicorn 0.54 leaves the handshake "incomplete",
            # so run_asgi logs an ERROR for every refused client (its wsproto protocol marks the
            # handshake done here; upstream: Kludex/uvicorn pull request 3138).
            self.handshake_complete = True

    def _accept(self, message: Any) -> None:
        """uvicorn's answer to ``websocket.accept`` (the 101 websockets prepared, with uvicorn's
        default headers, the app's headers and subprotocol), without formatting the access-log
        line's arguments when that line is not logged."""
        if self.logger.isEnabledFor(logging.INFO):
            client, path = get_client_addr(self.scope), get_path_with_query_string(self.scope)
            self.logger.info('%s - "WebSocket %s" [accepted]', client, path)
        conn = self.conn
        subprotocol = message.get("subprotocol")
        closing = self.transport.is_closing()
        answer = None
        if not closing and not subprotocol and not message.get("headers"):
            # A usual handshake's answer, written at once (the fence: _upstream.websockets).
            answer = usual_answer(conn, self.response, self.default_headers)
        if answer is None:
            headers = self.response.headers
            del headers["Date"]  # uvicorn's default headers carry its own
            for name, value in (*self.default_headers, *(message.get("headers") or ())):
                headers[name.decode("latin-1").lower()] = value.decode("latin-1")
            if subprotocol:
                headers["Sec-WebSocket-Protocol"] = subprotocol
        if not closing:
            self.handshake_complete = True
            if answer is None:
                conn.send_response(self.response)
                answer = b"".join(conn.data_to_send())
            self.transport.write(answer)
            self.start_keepalive()

    def start_keepalive(self) -> None:
        # uvicorn calls this once the handshake response is written: the parsed request and the
        # response are not needed any more (a few KB per idle connection). The request's headers
        # are emptied too: websockets' parser keeps the request object itself alive, and its
        # dozen containers would otherwise be scanned by every full garbage collection.
        if self.request is not None:
            self.request.headers.clear()
        self.request = self.response = None  # type: ignore[assignment]
        super().start_keepalive()

    def schedule_ping(self) -> None:
        # uvicorn's, on the loop's shared timer heap: an idle connection's next ping is a small
        # entry there instead of a loop timer of its own (about 450 bytes).
        assert self.ping_interval is not None
        delay = max(0.0, self.ping_interval - self.last_ping_rtt)
        timers = timers_for(self.loop)
        self.ping_timer = timers.call_later(delay, _send_keepalive_ping, self)  # type: ignore[assignment]

    def handle_events(self) -> None:
        # uvicorn's dispatch, with a whole text frame (the common case) delivered without the
        # two handler calls and the list uvicorn builds for it.
        frames = 0
        for event in self.conn.events_received():
            if type(event) is Frame:
                frames += 1
                opcode = event.opcode
                if opcode is Opcode.TEXT and event.fin:
                    self.curr_msg_data_type = "text"
                    self.frames = [event.data]  # type: ignore[list-item]
                    self.send_receive_event_to_app()
                elif opcode is Opcode.TEXT:
                    self.handle_text(event)
                elif opcode is Opcode.BINARY:
                    self.handle_bytes(event)
                elif opcode is Opcode.CONT:
                    self.handle_cont(event)
                elif opcode is Opcode.PING:
                    self.handle_ping()
                elif opcode is Opcode.PONG:
                    self.handle_pong(event)
                elif opcode is Opcode.CLOSE:
                    self.handle_close(event)
            elif isinstance(event, Request):
                self.handle_connect(event)
        if frames and self.frames_per_second:
            self._charge(frames)

    def send_receive_event_to_app(self) -> None:
        frames = self.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self.frames = _NO_FRAMES
        self._deliver(data, self.curr_msg_data_type == "text")

    def _deliver(self, data: bytes, text: bool) -> bool:
        """Queue one received message for the app; False if it failed the connection."""
        if self.close_sent:  # past websocket.close: drop it, keep reading for the close reply
            return True
        event: dict[str, Any]
        if text:
            try:
                event = {"type": "websocket.receive", "text": data.decode()}
            except UnicodeDecodeError:
                self.conn.fail(WsCloseCode.INVALID_DATA, "invalid UTF-8")
                self.handle_parser_exception()
                return False
        else:
            event = {"type": "websocket.receive", "bytes": data}
        queue = self.queue
        queue.put_nowait(event, len(data))
        if queue.waiting_bytes > READ_LIMIT and not self.queue_full:
            self.queue_full = True
            self._sync_reading()
        return True

    async def receive(self) -> Any:
        event = await self.queue.get()
        if self.queue_full:
            self._maybe_resume_reading()
        return event

    def receive_ready(self) -> asyncio.Future[None]:
        """A future that completes once :meth:`receive_nowait` has an event to return."""
        return self.queue.ready()

    def receive_nowait(self) -> Any | None:
        """The next ASGI receive event if one is waiting, else None (then await
        :meth:`receive_ready`, or ``receive``)."""
        queue = self.queue
        if not queue._events:
            return None
        event, size = queue._events.pop(0)  # ReceiveQueue.get_nowait, inline: once per message
        queue.waiting_bytes -= size
        if self.queue_full:
            self._maybe_resume_reading()
        return event

    def _maybe_resume_reading(self) -> None:
        if self.queue.waiting_bytes <= READ_LIMIT // 2:
            self.queue_full = False
            self._sync_reading()

    # ------------------------------------------------------------------ the direct path

    #: The socket's write buffer is over its high-water mark: queue, and wait_writable().
    #: A plain attribute (not a property), read for every frame sent; kept by ``writable``.
    write_paused: bool

    async def wait_writable(self) -> None:
        await self.writable.wait()

    #: No extension (permessage-deflate) rewrites frames: :meth:`send_wire` may be used. A plain
    #: attribute read once per broadcast recipient, set when the handshake is answered (the
    #: extensions are negotiated then and never change).
    plain_frames = True

    def send_now(self, message: str | bytes) -> int:
        """Frame ``message`` (text for ``str``) and write it. Returns the payload's size in bytes,
        or -1 if the socket is not open."""
        conn = self.conn
        if (
            self.close_sent
            or self.disconnected
            or (conn.state is not _OPEN and self.held_close is None)
        ):
            return -1
        if isinstance(message, str):
            text, data = True, message.encode()
        else:
            text, data = False, message
        size = len(data)
        if conn.extensions:  # permessage-deflate: websockets compresses and frames
            try:
                if text:
                    conn.send_text(data)
                else:
                    conn.send_binary(data)
            except InvalidState:
                return -1
            self.transport.writelines(conn.data_to_send())
            return size
        if size < 126:  # frame_header's common case, inline: this runs for every frame sent
            header = bytes((0x81 if text else 0x82, size))
        else:
            header = frame_header(OPCODE_TEXT if text else OPCODE_BINARY, size)
        self.transport.write(header + data)
        return size

    async def run_asgi(self) -> None:
        # The app's task, run as uvicorn runs it (the fence, netrun_ws._upstream.uvicorn, says
        # what that is), except that an app which handed its connection to serve_after_app
        # returns with the socket open: the task it handed over closes it.
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if not self.handed_over:
            self._app_done()

    def serve_after_app(
        self,
        serve: Callable[[Any], Coroutine[Any, Any, bool]],
        argument: Any,
        at_once: bool = False,
    ) -> None:
        """Serve the rest of an accepted connection with ``serve(argument)``, in tasks uvicorn's
        shutdown waits for (like the app's), and let the app's call return without closing the
        socket. (A function and its argument rather than a closure: one shared ``serve`` then
        serves every connection.)

        It runs in a task when an event is waiting (``at_once``: now), and returns False once the
        connection is over (the socket is then closed as ``run_asgi`` would), or True when it
        parked with nothing waiting: it runs again, in a new task, at the next event. A parked
        connection keeps no coroutine at all, and a busy one the two frames of ``serve`` instead
        of the app's whole await chain (uvicorn's task, its middleware, the app)."""
        self.handed_over = True
        self.serving, self.serving_argument = serve, argument
        # Accepted: a denial response (this extension's use) can no longer be sent.
        scope = self.scope
        scope["extensions"].pop("websocket.http.response", None)
        _share_path(scope)  # type: ignore[arg-type]
        headers = scope["headers"]
        if type(headers) is list and headers:
            learn_field(headers[0])  # the host field, for the next connections' lists
        self._serve_or_park(at_once)

    def _serve_or_park(self, at_once: bool = False) -> None:
        """Serve now if an event is waiting (or ``at_once``), else at the next one."""
        if at_once or self.queue._events:
            self._serve()
        else:
            self.queue.park(NetrunWebSocketProtocol._serve, self)

    def _serve(self) -> None:
        serve = self.serving
        if serve is None:  # over (a late event): nothing to run
            return
        task = self.loop.create_task(serve(self.serving_argument))
        task.add_done_callback(self._served)
        self.tasks.add(task)  # type: ignore[arg-type]  # uvicorn's set is of Task[None]

    def _served(self, task: asyncio.Task[bool]) -> None:
        self.on_task_complete(task)  # type: ignore[arg-type]
        parked = False
        if task.cancelled():
            pass
        elif (error := task.exception()) is not None:
            self.logger.error("Exception in ASGI application", exc_info=error)
        else:
            parked = task.result()
        if parked:  # an event may have come after serve() parked, before this callback
            self._serve_or_park()
            return
        self.serving = self.serving_argument = None
        self._app_done()

    def _app_done(self) -> None:
        """The app is done with the connection: answer a held close, close unless closing."""
        self.answer_held_close()
        if self.close_timer is None:
            self.transport.close()

    def peer_close(self) -> tuple[int, str] | None:
        """The code and reason of the client's close frame, once received; else None."""
        close = self.conn.close_rcvd
        return None if close is None else (close.code, close.reason)

    def send_wire(self, wire: bytes) -> bool:
        """Write an already framed, non-empty message (from :func:`netrun_ws.wire.wire_frame`);
        only when :attr:`plain_frames`. False if the socket is not open."""
        if (
            self.close_sent
            or self.disconnected
            or (connection_state(self.conn) is not _OPEN and self.held_close is None)
        ):
            return False
        # CorkedTransport.write and _Flusher.add, inline: this is a broadcast's per-recipient
        # step, and each method call was a tenth of its cost.
        cork = self.transport
        cork._buffer.append(wire)
        size = cork._size = cork._size + len(wire)
        if size >= CORK_LIMIT:
            cork.flush()
        elif not cork._pending:
            cork._pending = True
            flusher = cork._flusher
            flusher._pending.append(cork)
            if not flusher._scheduled:
                flusher._scheduled = True
                flusher._loop.call_soon(flusher._run)
        return True


__all__ = [
    "CORK_LIMIT",
    "PARSE_SLICE",
    "READ_LIMIT",
    "CorkedTransport",
    "NetrunWebSocketProtocol",
    "ReceiveQueue",
    "WritableFlag",
    "parse_upgrade_request",
]
