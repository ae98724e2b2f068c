"""``WebSocketConnectionManager``: the registry of live connections and the way to send to them.

It keeps netrun-websocket's API (``connect``, ``disconnect``, ``send_message``, ``send_to_user``,
``broadcast``, ``receive_message``, ``get_connection_info``, ``get_user_connections``,
``get_stats``) and adds what a production server needs: a bounded outbound queue per connection
(sending never waits on a client), limits enforced before any await, session-id aliases, and one
``on_disconnect`` callback per connection whatever ended it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Container, Coroutine, Iterable
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from netrun_ws.codes import CloseCode, ErrorCode
from netrun_ws.connection import (
    OVERFLOW_POLICIES,
    Connection,
    OverflowPolicy,
    close_quietly,
)
from netrun_ws.connection_metadata import DEFAULT_ENDPOINT, ConnectionMetadata, ConnectionOrigin
from netrun_ws.ids_by_user import IdsByUser
from netrun_ws.wire import encode_message, frame_size

logger = logging.getLogger(__name__)

#: ``on_disconnect(connection, code, reason)``; may be a plain function or ``async def``.
DisconnectCallback = Callable[[Connection, int, str], Awaitable[None] | None]

#: Close code reported to ``on_disconnect`` when a send fails or the peer vanished without a
#: close frame (RFC 6455 "abnormal closure"; never sent on the wire).
ABNORMAL_CLOSURE = 1006
#: Close code reported when the peer's disconnect carried none (RFC 6455 "no status received").
NO_STATUS_RECEIVED = 1005


class InvalidMessageError(ValueError):
    """``receive_message`` read a frame it cannot return as a JSON object.

    The frame is consumed: the next ``receive_message`` call returns the next frame.

    - ``raw``: the exact text (text frame) or bytes (binary frame) received;
    - ``error``: why it was rejected, in words;
    - ``code``: :attr:`ErrorCode.INVALID_JSON` (not JSON, or binary that is not UTF-8) or
      :attr:`ErrorCode.INVALID_MESSAGE` (valid JSON that is not an object).
    """

    def __init__(self, raw: str | bytes, error: str, code: str = ErrorCode.INVALID_JSON) -> None:
        super().__init__(error)
        self.raw = raw
        self.error = error
        self.code = code


class ConnectionLimitError(ValueError):
    """``connect`` refused a socket because a limit is reached (the socket was closed with 1013).

    ``limit_name`` is ``"max_connections_per_user"`` or ``"max_connections"``; ``limit`` its value.
    """

    def __init__(self, limit_name: str, limit: int, user_id: str) -> None:
        if limit_name == "max_connections_per_user":
            message = f"{limit_name} ({limit}) reached for user {user_id!r}"
        else:
            message = f"{limit_name} ({limit}) reached"
        super().__init__(message)
        self.limit_name = limit_name
        self.limit = limit
        self.user_id = user_id


class SessionInUseError(ValueError):
    """``connect`` refused a ``session_id`` that a live connection already uses (closed with 1013).

    Two live connections answering to one session id would make every call addressed by that id
    ambiguous. Pass ``replace_session=True`` to replace the old connection instead.
    """

    def __init__(self, session_id: str) -> None:
        # The id itself stays out of the message: session ids are secrets, kept out of logs.
        super().__init__("session_id is already in use by a live connection")
        self.session_id = session_id


def _check_positive(name: str, value: Any, *, integer: bool) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0, got {value!r}")


class WebSocketConnectionManager:
    """Registry of live WebSocket connections, addressable by connection id or session id.

    Constructor arguments (netrun-websocket's three, then keyword-only extras):

    - ``max_connections_per_user``: connections one user may hold at once;
    - ``heartbeat_interval``, ``connection_timeout``: seconds; kept for compatibility and read by
      the heartbeat machinery; ``connection_timeout`` is also what :meth:`close_idle_connections`
      uses;
    - ``max_connections``: optional cap on all connections of this manager;
    - ``send_queue_size``: frames queued per connection before ``overflow_policy`` applies;
    - ``overflow_policy``: ``"disconnect"`` (close the slow client with 4101) or
      ``"drop_oldest"`` (discard its oldest queued frame, counted);
    - ``close_timeout``: seconds to wait for queued frames and the close handshake on disconnect;
    - ``clock``: the time ``connected_at`` and ``last_activity`` are stamped with and
      :meth:`close_idle_connections` compares them to (default ``time.time``; injectable so
      tests can move time by hand).

    Every argument that is not a positive number raises ``ValueError`` naming it.

    Set :attr:`on_disconnect` to be told, exactly once per connection, that it ended.
    """

    def __init__(
        self,
        max_connections_per_user: int = 5,
        heartbeat_interval: float = 30,
        connection_timeout: float = 300,
        *,
        max_connections: int | None = None,
        send_queue_size: int = 256,
        overflow_policy: OverflowPolicy = "disconnect",
        close_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _check_positive("max_connections_per_user", max_connections_per_user, integer=True)
        _check_positive("heartbeat_interval", heartbeat_interval, integer=False)
        _check_positive("connection_timeout", connection_timeout, integer=False)
        if max_connections is not None:
            _check_positive("max_connections", max_connections, integer=True)
        _check_positive("send_queue_size", send_queue_size, integer=True)
        _check_positive("close_timeout", close_timeout, integer=False)
        if not callable(clock):
            raise ValueError("clock must be a callable returning seconds since the epoch")
        if overflow_policy not in OVERFLOW_POLICIES:
            raise ValueError(
                f"overflow_policy must be one of {OVERFLOW_POLICIES}, got {overflow_policy!r}"
            )
        self.max_connections_per_user = max_connections_per_user
        self.heartbeat_interval = heartbeat_interval
        self.connection_timeout = connection_timeout
        self.max_connections = max_connections
        self.send_queue_size = send_queue_size
        self.overflow_policy: OverflowPolicy = overflow_policy
        self.close_timeout = close_timeout
        self._clock = clock
        #: Called as ``on_disconnect(connection, code, reason)`` once per connection; may be async.
        self.on_disconnect: DisconnectCallback | None = None

        self._connections: dict[str, Connection] = {}
        self._by_user = IdsByUser()  # user id -> connection ids, oldest first
        self._by_session: dict[str, str] = {}  # session id -> connection id
        self._pending_by_user: dict[str, int] = {}  # slots reserved by connects awaiting accept
        self._pending_total = 0
        self._pending_sessions: set[str] = set()
        # Removed but still flushing/closing: kept so stats stay exact until they are retired.
        self._closing: set[Connection] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._retired = {"messages_sent": 0, "messages_received": 0}
        self._retired |= {"bytes_sent": 0, "bytes_received": 0, "dropped_messages": 0}
        self._total_connects = 0
        self._failed_sends = 0
        self._slow_consumer_disconnects = 0
        # What connect() was told about a connection's origin, only when it differs from the
        # default: most connections need no entry.
        self._origins: dict[str, ConnectionOrigin] = {}

    # ------------------------------------------------------------------ connect / disconnect

    async def connect(
        self,
        websocket: WebSocket,
        user_id: str,
        session_id: str | None = None,
        endpoint: str = DEFAULT_ENDPOINT,
        ip_address: str | None = None,
        user_agent: str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        accept: bool = True,
        subprotocol: str | None = None,
        replace_session: bool = False,
    ) -> str:
        """Accept ``websocket`` for ``user_id`` and return its connection id.

        ``session_id`` makes the connection addressable by that id too. ``endpoint``,
        ``ip_address`` and ``user_agent`` (netrun-websocket 1.0's arguments, in its order) are
        kept for :meth:`get_connection_metadata`. With ``accept=False`` the caller has accepted
        already; ``subprotocol`` is passed to ``accept``.

        Refusals close the socket with 1013 (before accept, uvicorn turns that into HTTP 403)
        and raise a ``ValueError``: :class:`ConnectionLimitError` (naming the limit) past
        ``max_connections_per_user`` or ``max_connections``; :class:`SessionInUseError` when a
        live connection already uses ``session_id``, unless ``replace_session=True``: then that
        connection is closed with 1000 "session replaced" and this one takes the id (only safe
        when the old connection's handler addresses it by connection id, not by session id).
        If accepting fails (the client vanished mid-handshake) the error propagates and no slot
        stays reserved.
        """
        if not isinstance(user_id, str) or not user_id:
            raise ValueError(f"user_id must be a non-empty string, got {user_id!r}")
        origin = None
        if endpoint != DEFAULT_ENDPOINT or ip_address is not None or user_agent is not None:
            origin = ConnectionOrigin.checked(endpoint, ip_address, user_agent)
        # Reserve synchronously: concurrent connects of one user cannot all pass the check.
        refusal = self._reserve(user_id, session_id, replace_session)
        if refusal is not None:
            reason = "session in use" if isinstance(refusal, SessionInUseError) else "limit reached"
            await close_quietly(websocket, CloseCode.TRY_AGAIN_LATER, reason, self.close_timeout)
            raise refusal
        try:
            if accept and websocket.application_state == WebSocketState.CONNECTING:
                await websocket.accept(subprotocol=subprotocol)
        finally:
            self._release(user_id, session_id)
        if session_id is not None:
            self._evict_session(session_id)
        connection = Connection(
            websocket,
            user_id,
            owner=self,
            session_id=session_id,
            metadata=metadata,
            maxsize=self.send_queue_size,
            overflow_policy=self.overflow_policy,
        )
        if self._clock is not time.time:  # Connection stamps itself with time.time()
            connection.connected_at = connection.last_activity = self._clock()
        self._register(connection)
        if origin is not None:
            self._origins[connection.connection_id] = origin
        return connection.connection_id

    async def disconnect(self, connection_id: str, code: int = 1000, reason: str = "") -> None:
        """Remove the connection (by connection id or session id) and close its socket.

        Frames queued before the call are sent first (waiting at most ``close_timeout``).
        Idempotent: an unknown or already removed id is a no-op. Never raises for a socket the
        peer already closed.
        """
        connection = self._resolve(connection_id)
        if connection is None or not self._unregister(connection):
            return
        connection.closed = True
        try:
            await self._notify_disconnect(connection, code, reason)
            await connection.flush(self.close_timeout)
            await connection._close_socket(code, reason, self.close_timeout)
        finally:
            self._retire(connection)

    async def close_all(self, code: int = 1001, reason: str = "") -> int:
        """Disconnect every connection concurrently; return how many were connected."""
        ids = list(self._connections)
        await asyncio.gather(*(self.disconnect(cid, code, reason) for cid in ids))
        if self._background:
            await asyncio.wait(set(self._background), timeout=self.close_timeout * 2)
        return len(ids)

    async def close_idle_connections(self, code: int = 1001) -> int:
        """Disconnect connections that received nothing for ``connection_timeout`` seconds."""
        cutoff = self._clock() - self.connection_timeout
        idle = [c.connection_id for c in self._connections.values() if c.last_activity < cutoff]
        await asyncio.gather(*(self.disconnect(cid, code, "idle timeout") for cid in idle))
        return len(idle)

    # ------------------------------------------------------------------ sending

    async def send_message(self, connection_id: str, message: Any, binary: bool = False) -> bool:
        """Queue ``message`` (see :func:`encode_message`) for one connection (id or session id).

        Returns True once queued, False for an unknown or closed connection or a slow consumer
        disconnected by this frame. Raises ``TypeError`` for a message that cannot be encoded.
        """
        frame = encode_message(message, binary)
        connection = self._resolve(connection_id)
        return connection is not None and connection.enqueue(frame)

    async def send_to_user(self, user_id: str, message: Any, binary: bool = False) -> int:
        """Queue ``message``, encoded once, for every connection of ``user_id``; return how many."""
        ids = self._by_user.ids(user_id)
        if not ids:
            return 0
        frame = encode_message(message, binary)
        # A snapshot: an overflowing connection unregisters itself during the loop.
        connections = [self._connections[connection_id] for connection_id in ids]
        return sum(1 for c in connections if c.enqueue(frame))

    async def broadcast(
        self, message: Any, exclude_users: Iterable[str] | None = None, binary: bool = False
    ) -> int:
        """Queue ``message``, encoded once, for every connection except those of ``exclude_users``.

        Returns how many connections it was queued for. A dead client is found by its writer,
        dropped and counted in ``failed_sends``; nothing is raised into the caller.
        """
        if not self._connections:
            return 0
        frame = encode_message(message, binary)
        targets = tuple(self._connections.values())
        if exclude_users:
            excluded = (
                exclude_users if isinstance(exclude_users, set | frozenset) else set(exclude_users)
            )
            return sum(1 for c in targets if c.user_id not in excluded and c.enqueue(frame))
        return sum(1 for c in targets if c.enqueue(frame))

    # ------------------------------------------------------------------ receiving

    async def receive_message(self, connection_id: str) -> dict[str, Any] | None:
        """Read the next frame from a connection (by id or session id) as a JSON object.

        Returns None for an unknown or closed connection, or once the peer is gone (the
        connection is then removed; a later :meth:`disconnect` is a no-op). A frame that is not
        valid JSON, binary that is not UTF-8, or JSON that is not an object raises
        :class:`InvalidMessageError` carrying the exact ``raw`` frame; that frame is consumed and
        the next call returns the next frame. Binary frames are decoded as UTF-8 JSON.
        Call it from one task per connection (ASGI allows one reader).
        """
        connection = self._resolve(connection_id)
        if connection is None or connection.closed:
            return None
        try:
            event = await connection.websocket.receive()
        except Exception as exc:  # e.g. a disconnect already consumed elsewhere
            logger.debug("receive on %s failed: %r", connection.connection_id, exc)
            await self._peer_gone(connection, ABNORMAL_CLOSURE, "")
            return None
        if event["type"] == "websocket.disconnect":
            code = event.get("code") or NO_STATUS_RECEIVED
            await self._peer_gone(connection, code, event.get("reason") or "")
            return None
        raw: str | bytes | None = event.get("text")
        if raw is None:
            raw = event.get("bytes") or b""
        connection.messages_received += 1
        connection.bytes_received += frame_size(raw)
        connection.last_activity = self._clock()
        return _parse_object(raw)

    # ------------------------------------------------------------------ lookups and stats

    def get_connection(self, connection_id: str) -> Connection | None:
        """The live connection with this connection id or session id, else None."""
        return self._resolve(connection_id)

    def live(
        self, connection_ids: Iterable[str], excluded: Container[str] = frozenset()
    ) -> list[Connection]:
        """The live connections among ``connection_ids`` (connection or session ids, as
        :meth:`get_connection` takes them) but those in ``excluded``, in order: a fan-out's
        recipients, found with one dict lookup each rather than a method call each."""
        get = self._connections.get
        found = []
        for connection_id in connection_ids:
            if connection_id in excluded:
                continue
            connection = get(connection_id)
            if connection is None:
                connection = self._resolve(connection_id)  # a session id, or gone
                if connection is None:
                    continue
            found.append(connection)
        return found

    def get_connection_info(self, connection_id: str) -> dict[str, Any] | None:
        """A snapshot of one connection (see :meth:`Connection.info`), or None if unknown."""
        connection = self._resolve(connection_id)
        return None if connection is None else connection.info()

    def get_connection_metadata(self, connection_id: str) -> ConnectionMetadata | None:
        """netrun-websocket 1.0's record of one connection (id or session id), or None."""
        connection = self._resolve(connection_id)
        if connection is None:
            return None
        return ConnectionMetadata.of(connection, self._origins.get(connection.connection_id))

    def get_user_connections(self, user_id: str) -> list[str]:
        """Connection ids of ``user_id``'s live connections, oldest first."""
        return list(self._by_user.ids(user_id))

    def connections(self) -> tuple[Connection, ...]:
        """A snapshot of the live connections (safe to iterate while connections come and go)."""
        return tuple(self._connections.values())

    def __len__(self) -> int:
        return len(self._connections)

    def __contains__(self, connection_id: object) -> bool:
        return isinstance(connection_id, str) and self._resolve(connection_id) is not None

    def get_stats(self) -> dict[str, Any]:
        """Counts of connections and traffic since this manager was created."""
        totals = dict(self._retired)
        queued = 0
        for connection in (*self._connections.values(), *self._closing):
            totals["messages_sent"] += connection.messages_sent
            totals["messages_received"] += connection.messages_received
            totals["bytes_sent"] += connection.bytes_sent
            totals["bytes_received"] += connection.bytes_received
            totals["dropped_messages"] += connection.dropped
            queued += connection.queue_length
        return {
            "total_connections": len(self._connections),
            "total_users": len(self._by_user),
            "connections_per_user": {
                user: self._by_user.count(user) for user in self._by_user.users()
            },
            "max_connections_per_user": self.max_connections_per_user,
            "max_connections": self.max_connections,
            "pending_connections": self._pending_total,
            "closing_connections": len(self._closing),
            "total_connects": self._total_connects,
            **totals,
            "queued_frames": queued,
            "failed_sends": self._failed_sends,
            "slow_consumer_disconnects": self._slow_consumer_disconnects,
            "send_queue_size": self.send_queue_size,
            "overflow_policy": self.overflow_policy,
        }

    # ------------------------------------------------------------------ ConnectionOwner

    def _send_failed(self, connection: Connection, error: Exception) -> None:
        if self._unregister(connection):
            peer = connection.peer_close()
            if peer is not None:
                # The client closed first (frames it sent before its close frame were still
                # being answered): its own code, not an abnormal closure.
                code, reason = peer
            else:
                self._failed_sends += 1
                code, reason = ABNORMAL_CLOSURE, f"send failed: {type(error).__name__}"
            self._spawn(self._finish_removed(connection, code, reason))

    def _overflowed(self, connection: Connection) -> None:
        if self._unregister(connection):
            self._slow_consumer_disconnects += 1
            self._spawn(self._finish_removed(connection, CloseCode.SLOW_CONSUMER, "slow consumer"))

    # ------------------------------------------------------------------ internals

    def _reserve(
        self, user_id: str, session_id: str | None, replace_session: bool
    ) -> ValueError | None:
        if session_id is not None and (
            session_id in self._pending_sessions
            or (session_id in self._by_session and not replace_session)
        ):
            return SessionInUseError(session_id)
        held = self._by_user.count(user_id) + self._pending_by_user.get(user_id, 0)
        if held >= self.max_connections_per_user:
            return ConnectionLimitError(
                "max_connections_per_user", self.max_connections_per_user, user_id
            )
        limit = self.max_connections
        if limit is not None and len(self._connections) + self._pending_total >= limit:
            return ConnectionLimitError("max_connections", limit, user_id)
        self._pending_by_user[user_id] = self._pending_by_user.get(user_id, 0) + 1
        self._pending_total += 1
        if session_id is not None:
            self._pending_sessions.add(session_id)
        return None

    def _release(self, user_id: str, session_id: str | None) -> None:
        if session_id is not None:
            self._pending_sessions.discard(session_id)
        self._pending_total -= 1
        left = self._pending_by_user[user_id] - 1
        if left:
            self._pending_by_user[user_id] = left
        else:
            del self._pending_by_user[user_id]

    def _evict_session(self, session_id: str) -> None:
        """Remove the connection holding ``session_id`` (``replace_session=True`` only)."""
        holder = self._connections.get(self._by_session.get(session_id, ""))
        if holder is not None and self._unregister(holder):
            holder._abandon()
            self._spawn(self._finish_removed(holder, CloseCode.NORMAL, "session replaced"))

    def _register(self, connection: Connection) -> None:
        self._connections[connection.connection_id] = connection
        self._by_user.add(connection.user_id, connection.connection_id)
        if connection.session_id is not None:
            self._by_session[connection.session_id] = connection.connection_id
        self._total_connects += 1

    def _unregister(self, connection: Connection) -> bool:
        """Drop every index entry of ``connection``; False if another path did already."""
        if self._connections.get(connection.connection_id) is not connection:
            return False
        del self._connections[connection.connection_id]
        if self._origins:
            self._origins.pop(connection.connection_id, None)
        self._by_user.discard(connection.user_id, connection.connection_id)
        session_id = connection.session_id
        if session_id is not None and self._by_session.get(session_id) == connection.connection_id:
            del self._by_session[session_id]
        self._closing.add(connection)
        return True

    def _retire(self, connection: Connection) -> None:
        """Fold a removed connection's counters into the totals once it is fully closed."""
        if connection in self._closing:
            self._closing.discard(connection)
            retired = self._retired
            retired["messages_sent"] += connection.messages_sent
            retired["messages_received"] += connection.messages_received
            retired["bytes_sent"] += connection.bytes_sent
            retired["bytes_received"] += connection.bytes_received
            retired["dropped_messages"] += connection.dropped

    def _resolve(self, connection_id: str) -> Connection | None:
        connection = self._connections.get(connection_id)
        if connection is None:
            aliased = self._by_session.get(connection_id)
            if aliased is not None:
                connection = self._connections.get(aliased)
        return connection

    async def _peer_gone(self, connection: Connection, code: int, reason: str) -> None:
        if not self._unregister(connection):
            return
        connection._abandon()
        try:
            await self._notify_disconnect(connection, code, reason)
            # Nothing to send to a peer that left; this only releases a half-open socket.
            await connection._close_socket(code, reason, self.close_timeout)
        finally:
            self._retire(connection)

    async def _finish_removed(self, connection: Connection, code: int, reason: str) -> None:
        try:
            await self._notify_disconnect(connection, code, reason)
            await connection._close_socket(code, reason, self.close_timeout)
        finally:
            self._retire(connection)

    async def _notify_disconnect(self, connection: Connection, code: int, reason: str) -> None:
        callback = self.on_disconnect
        if callback is None:
            return
        try:
            result = callback(connection, int(code), reason)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("on_disconnect failed for connection %s", connection.connection_id)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number"}
_JSON_KINDS |= {bool: "a boolean", type(None): "null"}


def _parse_object(raw: str | bytes) -> dict[str, Any]:
    """``raw`` as a JSON object, or :class:`InvalidMessageError` carrying ``raw``."""
    try:
        text = raw if isinstance(raw, str) else raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessageError(raw, f"binary frame is not valid UTF-8: {exc}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidMessageError(raw, f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        kind = _JSON_KINDS.get(type(value), type(value).__name__)
        raise InvalidMessageError(
            raw, f"expected a JSON object, got {kind}", ErrorCode.INVALID_MESSAGE
        )
    return value


__all__ = [
    "ABNORMAL_CLOSURE",
    "ConnectionLimitError",
    "DisconnectCallback",
    "InvalidMessageError",
    "SessionInUseError",
    "WebSocketConnectionManager",
    "encode_message",
]
