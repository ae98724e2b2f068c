"""One accepted WebSocket and its bounded outbound queue.

Sending never waits on the network. Under netrun-ws's uvicorn protocol (:mod:`netrun_ws.transport`)
:meth:`Connection.enqueue` frames and writes a message synchronously while the socket's write buffer
has room; otherwise (and under any other server) it appends the frame to a small deque and, if no
writer is running, starts one task that drains the deque and exits when it is empty. An idle
connection therefore owns no task, and one slow or dead client never delays whoever enqueued.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal, Protocol

from starlette.websockets import WebSocket, WebSocketState

from netrun_ws.handshake import Handshake
from netrun_ws.identity import Identity
from netrun_ws.wire import (
    Frame,
    frame_header,
    frame_size,
    truncate_close_reason,
    wire_frame,
)

logger = logging.getLogger(__name__)

#: What happens when a frame is enqueued to a full queue (see :meth:`Connection.enqueue`).
OverflowPolicy = Literal["disconnect", "drop_oldest"]
OVERFLOW_POLICIES: tuple[OverflowPolicy, ...] = ("disconnect", "drop_oldest")

#: The ASGI scope extension under which a server offers a :class:`DirectChannel`.
DIRECT_EXTENSION = "netrun.direct"


class DirectChannel(Protocol):
    """A synchronous path to the socket offered by the server
    (``scope["extensions"]["netrun.direct"]``, see
    :class:`netrun_ws.transport.NetrunWebSocketProtocol`), used after the handshake."""

    def receive_nowait(self) -> Any:
        """The next ASGI receive event (a dict) if one is waiting, else None (then await
        :meth:`receive_ready`)."""

    def receive_ready(self) -> asyncio.Future[None]:
        """A future that completes once :meth:`receive_nowait` has an event to return."""

    #: The socket's write buffer is full: queue, and wait for :meth:`wait_writable`.
    write_paused: bool

    @property
    def plain_frames(self) -> bool:
        """No extension rewrites frames, so a pre-framed message may go out as is."""

    def send_now(self, message: Frame) -> int:
        """Frame and write ``message``; its size in bytes, or -1 if the socket is not open."""

    def send_wire(self, wire: bytes) -> bool:
        """Write an already framed message; False if the socket is no longer open."""

    async def wait_writable(self) -> None:
        """Return once the write buffer has drained below its low-water mark."""

    def peer_close(self) -> tuple[int, str] | None:
        """The code and reason of the close frame the client sent, or None if it sent none."""

    def serve_after_app(
        self,
        serve: Callable[[Any], Coroutine[Any, Any, bool]],
        argument: Any,
        at_once: bool = False,
    ) -> None:
        """Serve the rest of the connection with ``serve(argument)``, in tasks the server keeps,
        and let the ASGI app's call return without closing the socket. It runs when an event is
        waiting (``at_once``: now): it returns False once the connection is over, True when it
        parked (nothing waiting), to be run again at the next event."""


class SocketClosedError(ConnectionError):
    """The direct send path found the socket closed."""


class ConnectionOwner(Protocol):
    """What a :class:`Connection` reports to (the connection manager implements it)."""

    def _send_failed(self, connection: Connection, error: Exception) -> None:
        """The writer could not send a frame; the connection is already marked closed."""

    def _overflowed(self, connection: Connection) -> None:
        """The queue overflowed under the ``"disconnect"`` policy; the connection is closed."""


def uuid4_hex() -> str:
    """A random (version 4) UUID as 32 hex digits, as ``uuid.uuid4().hex`` gives it, without
    building the UUID object (a third of the cost; two are made per connection)."""
    data = bytearray(os.urandom(16))
    data[6] = (data[6] & 0x0F) | 0x40  # version 4
    data[8] = (data[8] & 0x3F) | 0x80  # RFC 4122 variant
    return data.hex()


async def close_quietly(websocket: WebSocket, code: int, reason: str, timeout: float) -> None:
    """Close ``websocket`` with ``code``, waiting at most ``timeout`` seconds; never raises.

    Before accept, uvicorn answers the handshake with HTTP 403. A socket already closed (by us or
    by the peer) is left alone. The wait is bounded because uvicorn's close waits behind the
    write buffer of a client that stopped reading; when it times out, uvicorn's own ping timeout
    eventually drops the transport.
    """
    if (
        websocket.application_state == WebSocketState.DISCONNECTED
        or websocket.client_state == WebSocketState.DISCONNECTED
    ):
        return
    # asyncio.timeout, not wait_for: Python 3.11's wait_for runs the close in a task of its own
    # (one per connection closed), and that task keeps the exception, whose traceback keeps
    # wait_for's frame, which keeps the task: a cycle that held every closed connection's
    # protocol and buffers until the cyclic collector ran.
    try:
        async with asyncio.timeout(timeout):
            await websocket.close(code, truncate_close_reason(reason))
    except Exception as exc:  # the peer may be gone already; closing is best effort
        logger.debug("closing websocket with %s failed: %r", code, exc)


class Connection:
    """An accepted WebSocket registered with a connection manager.

    Public, read-only for callers (the manager and the writer update them):

    - ``connection_id`` (uuid4 hex), ``user_id``, ``session_id``, ``websocket``, ``metadata``;
    - ``handshake`` (query parameters, headers, client address, subprotocol) and ``identity``;
    - ``connected_at`` and ``last_activity`` (``time.time()``; ``last_activity`` is the last frame
      received from the peer, or the connect time);
    - ``messages_sent`` / ``bytes_sent`` (frames actually written to the socket),
      ``messages_received`` / ``bytes_received``;
    - ``closed`` (no more frames are accepted), ``dropped`` (frames discarded by ``drop_oldest``);
    - ``maxsize`` and ``overflow_policy`` of the outbound queue.
    """

    __slots__ = (
        "_drop_oldest",
        "_handshake",
        "_held_direct",
        "_holding",
        "_owner",
        "_queue",
        "_writer",
        "asgi_send",
        "bytes_received",
        "bytes_sent",
        "closed",
        "connected_at",
        "connection_id",
        "direct",
        "dropped",
        "last_activity",
        "maxsize",
        "messages_received",
        "messages_sent",
        "metadata",
        "parked_loop",
        "session_id",
        "user_id",
        "websocket",
    )

    def __init__(
        self,
        websocket: WebSocket,
        user_id: str,
        *,
        owner: ConnectionOwner,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        maxsize: int = 256,
        overflow_policy: OverflowPolicy = "disconnect",
        connection_id: str | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize!r}")
        if overflow_policy not in OVERFLOW_POLICIES:
            raise ValueError(
                f"overflow_policy must be one of {OVERFLOW_POLICIES}, got {overflow_policy!r}"
            )
        self.connection_id: str = connection_id or uuid4_hex()
        self.user_id = user_id
        self.session_id = session_id
        self.websocket = websocket
        self.metadata: dict[str, Any] = dict(metadata) if metadata else {}
        self.connected_at = self.last_activity = time.time()
        self.messages_sent = self.messages_received = 0
        self.bytes_sent = self.bytes_received = 0
        self.closed = False
        #: The message loop's state while it is parked (netrun_ws.runtime.message_loop).
        self.parked_loop: tuple[float, float, int, int] | None = None
        self.dropped = 0
        self.maxsize = maxsize
        self._drop_oldest = overflow_policy == "drop_oldest"
        self._owner = owner
        # Created on first use: under the direct channel most connections never need one.
        self._queue: deque[Frame] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._handshake: Handshake | None = None
        # While held (see hold()): frames wait in the queue, the direct channel is set aside.
        self._holding = False
        self._held_direct: DirectChannel | None = None
        #: The server's raw ASGI ``send``, when the framework host provides it: the writer then
        #: skips Starlette's per-frame wrapper. None: send through the Starlette WebSocket.
        self.asgi_send: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        #: The server's synchronous send path, when it offers one (see :class:`DirectChannel`).
        scope = getattr(websocket, "scope", None)
        extensions = scope.get("extensions") if isinstance(scope, dict) else None
        self.direct: DirectChannel | None = (
            extensions.get(DIRECT_EXTENSION) if isinstance(extensions, dict) else None
        )

    def __repr__(self) -> str:
        return (
            f"Connection(connection_id={self.connection_id!r}, user_id={self.user_id!r}, "
            f"session_id={self.session_id!r}, closed={self.closed})"
        )

    @property
    def handshake(self) -> Handshake:
        """The upgrade request: query parameters, headers, client address, subprotocol
        (:class:`~netrun_ws.handshake.Handshake`, built on first use)."""
        handshake = self._handshake
        if handshake is None:
            handshake = self._handshake = Handshake.of(self.websocket)
        return handshake

    @property
    def identity(self) -> Identity | None:
        """The :class:`~netrun_ws.identity.Identity` the auth plugin returned (its ``claims``,
        ``expires_at``), updated by a ``refresh``; None for a connection made outside the host.
        The same object as ``metadata["identity"]``, which stays for compatibility."""
        identity = self.metadata.get("identity")
        return identity if isinstance(identity, Identity) else None

    @property
    def overflow_policy(self) -> OverflowPolicy:
        return "drop_oldest" if self._drop_oldest else "disconnect"

    @property
    def queue_length(self) -> int:
        """Frames waiting to be written (not counting the one being written)."""
        return len(self._queue) if self._queue is not None else 0

    def enqueue(self, frame: Frame, wire: bytes | None = None) -> bool:
        """Queue ``frame`` for sending; never waits on the network.

        ``wire`` is optionally ``frame`` already framed for the wire (a broadcast frames its
        payload once for all recipients); it is used only where no extension rewrites frames.
        Returns True if the frame was queued (or written). Returns False if the connection is
        closed, or if the queue was full under the ``"disconnect"`` policy: the connection is
        then closed with ``CloseCode.SLOW_CONSUMER`` (4101) by its owner. Under
        ``"drop_oldest"`` a full queue discards its oldest frame (counted in :attr:`dropped`)
        and the new frame is queued.
        """
        if self.closed:
            return False
        direct = self.direct
        if direct is not None and self._writer is None and not direct.write_paused:
            if wire is not None and direct.plain_frames:
                size = frame_size(frame) if direct.send_wire(wire) else -1
            else:
                size = direct.send_now(frame)
            if size < 0:
                return self._socket_gone()
            self.messages_sent += 1
            self.bytes_sent += size
            return True
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        if len(queue) >= self.maxsize:
            if not self._drop_oldest:
                self._abandon()
                self._owner._overflowed(self)
                return False
            queue.popleft()
            self.dropped += 1
        queue.append(frame)
        if self._writer is None and not self._holding:
            self._writer = asyncio.get_running_loop().create_task(self._write())
        return True

    def enqueue_shared(self, frame: Frame, wire: bytes, size: int) -> bool:
        """:meth:`enqueue` for a frame that many connections get (a broadcast, a room message):
        ``wire`` is ``frame`` framed once for all (:func:`~netrun_ws.wire.wire_frame`) and
        ``size`` its :func:`~netrun_ws.wire.frame_size`. The same outcome as ``enqueue(frame,
        wire)``, with the common case (an open socket with room, nothing queued) in one call."""
        direct = self.direct
        if (
            direct is not None
            and self._writer is None
            and not self.closed
            and not direct.write_paused
            and direct.plain_frames
        ):
            if not direct.send_wire(wire):
                return self._socket_gone()
            self.messages_sent += 1
            self.bytes_sent += size
            return True
        return self.enqueue(frame, wire)

    def peer_close(self) -> tuple[int, str] | None:
        """The close code and reason the client sent, when the server's protocol tells it and
        the client has sent its close frame; else None."""
        direct = self.direct or self._held_direct
        return None if direct is None else direct.peer_close()

    def _socket_gone(self) -> bool:
        """A direct write found the socket closed: give the connection up (False: not sent)."""
        self._abandon()
        self._owner._send_failed(self, SocketClosedError("socket closed"))
        return False

    def hold(self) -> None:
        """Queue every frame without writing it until :meth:`release`.

        The host holds a connection from its registration until its welcome is sent, so that
        nothing (an ``on_connect`` send, a broadcast) reaches the client before the welcome.
        Call it before anything was sent. The queue's bound (``maxsize``) applies meanwhile.
        """
        if not self._holding:
            self._holding = True
            self._held_direct, self.direct = self.direct, None

    def release(self, first: Frame | None = None) -> None:
        """Stop holding: send ``first`` (the welcome), then the frames queued meanwhile, in
        order (written at once where the direct channel allows, as :meth:`enqueue` does)."""
        if not self._holding:
            if first is not None:
                self.enqueue(first)
            return
        self._holding = False
        self.direct, self._held_direct = self._held_direct, None
        # No writer ran while holding (hold() comes before any send), so the queue is all ours.
        held, self._queue = self._queue, None
        if first is not None and not self.enqueue(first):
            return
        while held:
            if not self.enqueue(held.popleft()):
                return

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued frame was written (or ``timeout`` seconds passed).

        Returns True if the queue is empty and no write is in progress.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while (writer := self._writer) is not None:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            # wait() (unlike wait_for) never cancels the writer when the timeout expires.
            await asyncio.wait((writer,), timeout=remaining)
        return not self._queue

    def _abandon(self) -> None:
        """Stop accepting frames and discard the queued ones; an in-flight write finishes."""
        self.closed = True
        if self._queue is not None:
            self._queue.clear()

    async def _write(self) -> None:
        # The hot path: no logging and no await besides the send itself.
        queue = self._queue
        assert queue is not None  # a writer starts only after a frame was queued
        websocket = self.websocket
        raw_send = self.asgi_send
        direct = self.direct
        try:
            while queue:
                if direct is not None:
                    if direct.write_paused:
                        await direct.wait_writable()
                        if not queue:  # cleared meanwhile (closed, or dropped by the owner)
                            break
                    frame = queue.popleft()
                    size = direct.send_now(frame)
                    if size < 0:
                        raise SocketClosedError("socket closed")
                    self.bytes_sent += size
                    self.messages_sent += 1
                    continue
                frame = queue.popleft()
                if isinstance(frame, str):
                    if raw_send is not None:
                        await raw_send({"type": "websocket.send", "text": frame})
                    else:
                        await websocket.send_text(frame)
                    self.bytes_sent += len(frame) if frame.isascii() else len(frame.encode())
                else:
                    if raw_send is not None:
                        await raw_send({"type": "websocket.send", "bytes": frame})
                    else:
                        await websocket.send_bytes(frame)
                    self.bytes_sent += len(frame)
                self.messages_sent += 1
        except Exception as exc:
            if self.closed:
                queue.clear()  # the owner closed us mid-write; nothing to report
            else:
                self._abandon()
                self._owner._send_failed(self, exc)
        finally:
            # No await between the empty-queue check and this reset, so enqueue() always sees
            # either a running writer or None.
            self._writer = None

    def info(self) -> dict[str, Any]:
        """A JSON-friendly snapshot of this connection (``get_connection_info``)."""
        return {
            "connection_id": self.connection_id,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "connected_at": self.connected_at,
            "last_activity": self.last_activity,
            "messages_sent": self.messages_sent,
            "messages_received": self.messages_received,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "dropped": self.dropped,
            "queue_length": self.queue_length,
            "closed": self.closed,
            "metadata": dict(self.metadata),
        }

    async def _close_socket(self, code: int, reason: str, timeout: float) -> None:
        """Close the underlying socket (bounded, never raises); the owner handles bookkeeping."""
        await close_quietly(self.websocket, code, reason, timeout)


__all__ = [
    "DIRECT_EXTENSION",
    "OVERFLOW_POLICIES",
    "Connection",
    "ConnectionOwner",
    "DirectChannel",
    # The framing helpers live in netrun_ws.wire; still importable from here, as before.
    "Frame",
    "OverflowPolicy",
    "SocketClosedError",
    "close_quietly",
    "frame_header",
    "frame_size",
    "truncate_close_reason",
    "uuid4_hex",
    "wire_frame",
]
