"""WebSocketConnectionManager over a real uvicorn server and real ``websockets`` clients."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast

import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from netrun_ws.codes import CloseCode, ErrorCode
from netrun_ws.connection import Connection
from netrun_ws.connection_manager import (
    ConnectionLimitError,
    InvalidMessageError,
    SessionInUseError,
    WebSocketConnectionManager,
    encode_message,
)
from tests.support.manual_time import ManualTime
from tests.support.server import serve

TIMEOUT = 5.0

Endpoint = Callable[[WebSocket], Awaitable[None]]
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# A small server whose endpoints use the manager the way an application would
# ---------------------------------------------------------------------------------------------


class Server:
    """Endpoints over one manager, recording what the server side saw."""

    def __init__(self, manager: WebSocketConnectionManager) -> None:
        self.manager = manager
        #: ("message", user_id, dict) or ("invalid", user_id, raw, code), in arrival order.
        self.events: list[tuple[Any, ...]] = []
        self.refusals: list[ValueError] = []
        self.release = asyncio.Event()
        self.ended = 0  # endpoint calls that have returned

    async def reader(self, websocket: WebSocket) -> None:
        """Connect, read until the peer leaves, disconnect.

        Addressed by session id if one is given, unless ``?address=id``; ``?replace`` passes
        ``replace_session=True``.
        """
        user_id = websocket.path_params["user_id"]
        query = websocket.query_params
        session_id = query.get("session")
        try:
            connection_id = await self.manager.connect(
                websocket, user_id, session_id=session_id, replace_session="replace" in query
            )
        except ValueError as error:
            self.refusals.append(error)
            return
        by_id = query.get("address") == "id"
        await self._read_loop(user_id, connection_id if by_id else session_id or connection_id)

    async def accepted_first(self, websocket: WebSocket) -> None:
        """The application accepts the socket itself, then registers it with accept=False."""
        user_id = websocket.path_params["user_id"]
        await websocket.accept()
        try:
            connection_id = await self.manager.connect(websocket, user_id, accept=False)
        except ValueError as error:
            self.refusals.append(error)
            return
        await self._read_loop(user_id, connection_id)

    async def idle(self, websocket: WebSocket) -> None:
        """Connect and never read: only the writer can notice that the client died."""
        connection_id = await self.manager.connect(websocket, websocket.path_params["user_id"])
        try:
            await self.release.wait()
        finally:
            await self.manager.disconnect(connection_id)

    async def _read_loop(self, user_id: str, address: str) -> None:
        try:
            while True:
                try:
                    data = await self.manager.receive_message(address)
                except InvalidMessageError as error:
                    self.events.append(("invalid", user_id, error.raw, error.code))
                    continue
                if data is None:
                    break
                self.events.append(("message", user_id, data))
        finally:
            await self.manager.disconnect(address)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                WebSocketRoute("/ws/{user_id}", self._counted(self.reader)),
                WebSocketRoute("/accepted/{user_id}", self._counted(self.accepted_first)),
                WebSocketRoute("/idle/{user_id}", self._counted(self.idle)),
            ]
        )

    def _counted(self, endpoint: Endpoint) -> Endpoint:
        async def counted(websocket: WebSocket) -> None:
            try:
                await endpoint(websocket)
            finally:
                self.ended += 1

        return counted


@contextlib.asynccontextmanager
async def running(manager: WebSocketConnectionManager) -> AsyncIterator[tuple[Server, str]]:
    server = Server(manager)
    async with serve(server.app()) as addr:
        try:
            yield server, addr
        finally:
            server.release.set()
            await manager.close_all()


async def open_client(addr: str, path: str, **options: Any) -> ClientConnection:
    options.setdefault("compression", None)
    return await connect(f"ws://{addr}{path}", open_timeout=TIMEOUT, **options)


async def recv(client: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(client.recv(), TIMEOUT)


async def recv_json(client: ClientConnection) -> Any:
    return json.loads(await recv(client))


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_closed(client: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the server closes the client; return the close code and reason."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await recv(client)
    return client.close_code, client.close_reason


def internal_maps_empty(manager: WebSocketConnectionManager) -> bool:
    return not (
        manager._connections
        or manager._by_user
        or manager._by_session
        or manager._pending_by_user
        or manager._pending_total
        or manager._pending_sessions
        or manager._closing
        or manager._background
    )


def record_disconnects(manager: WebSocketConnectionManager) -> list[tuple[str, int, str]]:
    calls: list[tuple[str, int, str]] = []

    def on_disconnect(connection: Connection, code: int, reason: str) -> None:
        calls.append((connection.connection_id, code, reason))

    manager.on_disconnect = on_disconnect
    return calls


# ---------------------------------------------------------------------------------------------
# Construction
# ---------------------------------------------------------------------------------------------


def test_defaults_match_netrun_websocket() -> None:
    manager = WebSocketConnectionManager()
    assert manager.max_connections_per_user == 5
    assert manager.heartbeat_interval == 30
    assert manager.connection_timeout == 300
    assert manager.max_connections is None
    assert manager.send_queue_size == 256
    assert manager.overflow_policy == "disconnect"
    assert manager.on_disconnect is None


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_connections_per_user": 0}, "max_connections_per_user"),
        ({"max_connections_per_user": -1}, "max_connections_per_user"),
        ({"max_connections_per_user": True}, "max_connections_per_user"),
        ({"max_connections_per_user": "5"}, "max_connections_per_user"),
        ({"heartbeat_interval": 0}, "heartbeat_interval"),
        ({"connection_timeout": -300}, "connection_timeout"),
        ({"max_connections": 0}, "max_connections"),
        ({"send_queue_size": 0}, "send_queue_size"),
        ({"send_queue_size": 2.5}, "send_queue_size"),
        ({"overflow_policy": "block"}, "overflow_policy"),
        ({"close_timeout": 0}, "close_timeout"),
        ({"clock": 1_700_000_000.0}, "clock"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        WebSocketConnectionManager(**options)


# ---------------------------------------------------------------------------------------------
# Encoding (pure logic)
# ---------------------------------------------------------------------------------------------


class Greeting(BaseModel):
    type: str = "greeting"
    text: str


def test_encode_message_by_type() -> None:
    assert json.loads(encode_message({"a": 1, "é": "ü"})) == {"a": 1, "é": "ü"}
    assert json.loads(encode_message([1, "two"])) == [1, "two"]
    assert json.loads(encode_message(Greeting(text="hi"))) == {"type": "greeting", "text": "hi"}
    assert encode_message('{"already": "encoded"}') == '{"already": "encoded"}'
    assert encode_message(b"\x00\x01") == b"\x00\x01"
    assert encode_message({"a": 1}, binary=True) == b'{"a":1}'
    assert encode_message("ü", binary=True) == "ü".encode()
    moment = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert json.loads(encode_message({"at": moment})) == {"at": "2024-01-02T03:04:05Z"}
    with pytest.raises(TypeError, match="object"):
        encode_message(object())
    with pytest.raises(TypeError, match="JSON-serializable"):
        encode_message({"bad": object()})


# ---------------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------------


async def test_per_user_limit_answers_http_403_and_names_the_limit() -> None:
    manager = WebSocketConnectionManager(max_connections_per_user=2)
    async with running(manager) as (server, addr):
        first = await open_client(addr, "/ws/alice")
        second = await open_client(addr, "/ws/alice")
        with pytest.raises(InvalidStatus) as refused:
            await open_client(addr, "/ws/alice")
        assert refused.value.response.status_code == 403
        assert [str(error) for error in server.refusals] == [
            "max_connections_per_user (2) reached for user 'alice'"
        ]
        refusal = server.refusals[0]
        assert isinstance(refusal, ConnectionLimitError)
        assert (refusal.limit_name, refusal.limit, refusal.user_id) == (
            "max_connections_per_user",
            2,
            "alice",
        )
        # Another user is unaffected, and a freed slot can be used again.
        bob = await open_client(addr, "/ws/bob")
        await wait_until(lambda: len(manager) == 3, "3 connections")
        await first.close()
        await wait_until(lambda: len(manager.get_user_connections("alice")) == 1, "alice at 1")
        third = await open_client(addr, "/ws/alice")
        await wait_until(lambda: len(manager.get_user_connections("alice")) == 2, "alice at 2")
        for client in (second, bob, third):
            await client.close()


async def test_fifty_concurrent_connects_of_one_user_never_exceed_the_limit() -> None:
    manager = WebSocketConnectionManager(max_connections_per_user=5)
    async with running(manager) as (server, addr):
        results = await asyncio.gather(
            *(open_client(addr, "/ws/alice") for _ in range(50)), return_exceptions=True
        )
        opened = [r for r in results if isinstance(r, ClientConnection)]
        refused = [r for r in results if isinstance(r, InvalidStatus)]
        assert len(opened) == 5
        assert len(refused) == 45
        assert {r.response.status_code for r in refused} == {403}
        await wait_until(lambda: len(manager) == 5, "5 connections")
        assert manager.get_stats()["total_connections"] == 5
        assert len(server.refusals) == 45
        await asyncio.gather(*(client.close() for client in opened))
        await wait_until(lambda: internal_maps_empty(manager), "empty manager")


async def test_max_connections_caps_all_users() -> None:
    manager = WebSocketConnectionManager(max_connections=2)
    async with running(manager) as (server, addr):
        clients = [await open_client(addr, f"/ws/{user}") for user in ("a", "b")]
        with pytest.raises(InvalidStatus) as refused:
            await open_client(addr, "/ws/c")
        assert refused.value.response.status_code == 403
        assert str(server.refusals[0]) == "max_connections (2) reached"
        for client in clients:
            await client.close()


async def test_limit_after_the_application_accepted_closes_with_1013() -> None:
    manager = WebSocketConnectionManager(max_connections_per_user=1)
    async with running(manager) as (server, addr):
        first = await open_client(addr, "/accepted/alice")
        await wait_until(lambda: len(manager) == 1, "first connection")
        second = await open_client(addr, "/accepted/alice")  # accepted by the app, then refused
        code, _ = await wait_closed(second)
        assert code == CloseCode.TRY_AGAIN_LATER
        assert "max_connections_per_user (1)" in str(server.refusals[0])
        # accept=False registered the first socket: it is fully usable.
        assert await manager.send_to_user("alice", {"still": "here"}) == 1
        assert await recv_json(first) == {"still": "here"}
        await first.close()


# ---------------------------------------------------------------------------------------------
# Addressing and sending
# ---------------------------------------------------------------------------------------------


async def test_connection_addressable_by_session_id() -> None:
    manager = WebSocketConnectionManager()
    async with running(manager) as (server, addr):
        client = await open_client(addr, "/ws/alice?session=sess-1")
        await wait_until(lambda: len(manager) == 1, "connection")
        (connection_id,) = manager.get_user_connections("alice")
        connection = manager.get_connection("sess-1")
        assert connection is manager.get_connection(connection_id)
        assert connection is not None and connection.session_id == "sess-1"
        info = manager.get_connection_info("sess-1")
        assert info is not None and info["connection_id"] == connection_id
        assert "sess-1" in manager and connection_id in manager

        assert await manager.send_message("sess-1", {"via": "session"}) is True
        assert await recv_json(client) == {"via": "session"}
        # The endpoint reads with receive_message("sess-1").
        await client.send(json.dumps({"hello": 1}))
        await wait_until(lambda: len(server.events) == 1, "message")
        assert server.events == [("message", "alice", {"hello": 1})]

        # A second live connection may not answer to the same id: it would be ambiguous.
        with pytest.raises(InvalidStatus) as refused:
            await open_client(addr, "/ws/bob?session=sess-1")
        assert refused.value.response.status_code == 403
        assert isinstance(server.refusals[0], SessionInUseError)
        assert "session_id is already in use" in str(server.refusals[0])
        assert "sess-1" not in str(server.refusals[0])  # session ids are secrets

        # A fan-out's lookup takes the same ids, in order, skipping the excluded and the gone.
        assert manager.live(["gone", "sess-1", connection_id]) == [connection, connection]
        assert manager.live([connection_id, "sess-1"], excluded={connection_id}) == [connection]

        await manager.disconnect("sess-1", 4000, "done")
        assert await wait_closed(client) == (4000, "done")
        assert manager.get_connection("sess-1") is None
        assert manager.live(["sess-1", connection_id]) == []
        assert await manager.send_message("sess-1", {"x": 1}) is False
        await wait_until(lambda: internal_maps_empty(manager), "empty manager")


async def test_replace_session_closes_the_old_holder_of_the_session_id() -> None:
    manager = WebSocketConnectionManager()
    calls = record_disconnects(manager)
    async with running(manager) as (_, addr):
        older = await open_client(addr, "/ws/alice?session=s&address=id")
        await wait_until(lambda: manager.get_connection("s") is not None, "older")
        old_connection = manager.get_connection("s")
        newer = await open_client(addr, "/ws/alice?session=s&address=id&replace=1")
        await wait_until(lambda: manager.get_connection("s") not in (None, old_connection), "newer")
        assert await wait_closed(older) == (1000, "session replaced")
        assert old_connection is not None and calls[0][0] == old_connection.connection_id
        # The old handler's own disconnect (by connection id) did not touch the new holder.
        assert await manager.send_message("s", {"to": "newer"})
        assert await recv_json(newer) == {"to": "newer"}
        assert len(manager) == 1
        await newer.close()
        await wait_until(lambda: internal_maps_empty(manager), "empty manager")


async def test_send_message_frames_by_message_type() -> None:
    manager = WebSocketConnectionManager()
    async with running(manager) as (_, addr):
        client = await open_client(addr, "/ws/alice")
        await wait_until(lambda: len(manager) == 1, "connection")
        (cid,) = manager.get_user_connections("alice")
        assert await manager.send_message(cid, {"kind": "dict"})
        assert await manager.send_message(cid, [1, 2])
        assert await manager.send_message(cid, Greeting(text="model"))
        assert await manager.send_message(cid, '{"kind":"raw"}')
        assert await manager.send_message(cid, b"\x00\xff")
        assert await manager.send_message(cid, {"kind": "binary"}, binary=True)
        assert await recv(client) == '{"kind":"dict"}'
        assert await recv(client) == "[1,2]"
        assert json.loads(await recv(client)) == {"type": "greeting", "text": "model"}
        assert await recv(client) == '{"kind":"raw"}'
        assert await recv(client) == b"\x00\xff"
        assert await recv(client) == b'{"kind":"binary"}'
        assert await manager.send_message("no-such-id", {"x": 1}) is False
        with pytest.raises(TypeError):
            await manager.send_message(cid, {1, 2})
        await client.close()


async def test_send_to_user_and_broadcast_return_reach_and_honour_exclude_users() -> None:
    manager = WebSocketConnectionManager()
    async with running(manager) as (_, addr):
        alice1 = await open_client(addr, "/ws/alice")
        alice2 = await open_client(addr, "/ws/alice")
        bob = await open_client(addr, "/ws/bob")
        carol = await open_client(addr, "/ws/carol")
        await wait_until(lambda: len(manager) == 4, "4 connections")

        assert await manager.send_to_user("alice", {"n": 1}) == 2
        assert await recv_json(alice1) == {"n": 1}
        assert await recv_json(alice2) == {"n": 1}
        assert await manager.send_to_user("nobody", {"n": 0}) == 0

        assert await manager.broadcast({"n": 2}) == 4
        for client in (alice1, alice2, bob, carol):
            assert await recv_json(client) == {"n": 2}

        assert await manager.broadcast({"n": 3}, exclude_users={"alice"}) == 2
        assert await manager.broadcast({"n": 4}, exclude_users=["alice", "bob"]) == 1
        assert await manager.broadcast({"n": 5}) == 4
        assert [await recv_json(bob) for _ in range(2)] == [{"n": 3}, {"n": 5}]
        assert [await recv_json(carol) for _ in range(3)] == [{"n": 3}, {"n": 4}, {"n": 5}]
        # Alice's next frame is n=5: the excluded broadcasts never reached her.
        assert await recv_json(alice1) == {"n": 5}
        assert await recv_json(alice2) == {"n": 5}
        for client in (alice1, alice2, bob, carol):
            await client.close()


async def test_disconnect_sends_queued_frames_before_closing_and_is_idempotent() -> None:
    manager = WebSocketConnectionManager()
    calls = record_disconnects(manager)
    async with running(manager) as (_, addr):
        client = await open_client(addr, "/ws/alice")
        await wait_until(lambda: len(manager) == 1, "connection")
        (cid,) = manager.get_user_connections("alice")
        for n in range(3):
            await manager.send_message(cid, {"n": n})
        await manager.disconnect(cid, code=4000, reason="bye")
        assert [await recv_json(client) for _ in range(3)] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert await wait_closed(client) == (4000, "bye")
        await manager.disconnect(cid)
        await manager.disconnect("never-existed")
        assert calls == [(cid, 4000, "bye")]
        await wait_until(lambda: internal_maps_empty(manager), "empty manager")


# ---------------------------------------------------------------------------------------------
# Receiving
# ---------------------------------------------------------------------------------------------


async def test_receive_message_returns_none_when_the_peer_closes() -> None:
    manager = WebSocketConnectionManager()
    calls = record_disconnects(manager)
    async with running(manager) as (_, addr):
        client = await open_client(addr, "/ws/alice")
        await wait_until(lambda: len(manager) == 1, "connection")
        (cid,) = manager.get_user_connections("alice")
        await client.close(code=4001, reason="leaving")
        await wait_until(lambda: len(calls) == 1, "on_disconnect")
        # The endpoint's loop got None and its finally-disconnect was a harmless no-op.
        assert calls == [(cid, 4001, "leaving")]
        assert await manager.receive_message(cid) is None
        await wait_until(lambda: internal_maps_empty(manager), "empty manager")


async def test_invalid_json_raises_with_the_raw_frame_and_never_loses_the_next_one() -> None:
    manager = WebSocketConnectionManager()
    async with running(manager) as (server, addr):
        client = await open_client(addr, "/ws/alice")
        frames = ["not json{", '{"n": 1}', "[1, 2]", '"text"', "", '{"n": 2}']
        for frame in frames:
            await client.send(frame)
        await wait_until(lambda: len(server.events) == len(frames), "all frames")
        assert server.events == [
            ("invalid", "alice", "not json{", ErrorCode.INVALID_JSON),
            ("message", "alice", {"n": 1}),
            ("invalid", "alice", "[1, 2]", ErrorCode.INVALID_MESSAGE),
            ("invalid", "alice", '"text"', ErrorCode.INVALID_MESSAGE),
            ("invalid", "alice", "", ErrorCode.INVALID_JSON),
            ("message", "alice", {"n": 2}),
        ]
        info = manager.get_connection_info(manager.get_user_connections("alice")[0])
        assert info is not None and info["messages_received"] == len(frames)
        await client.close()


async def test_invalid_message_error_carries_raw_and_error() -> None:
    error = InvalidMessageError("oops", "invalid JSON: Expecting value")
    assert isinstance(error, ValueError)
    assert (error.raw, error.error, error.code) == (
        "oops",
        "invalid JSON: Expecting value",
        ErrorCode.INVALID_JSON,
    )


async def test_binary_frames_are_decoded_as_utf8_json() -> None:
    manager = WebSocketConnectionManager()
    async with running(manager) as (server, addr):
        client = await open_client(addr, "/ws/alice")
        await client.send('{"ü": 1}'.encode())
        await client.send(b"\xff\xfe{}")
        await client.send(b"plain bytes")
        await client.send(b'{"after": true}')
        await wait_until(lambda: len(server.events) == 4, "4 frames")
        assert server.events == [
            ("message", "alice", {"ü": 1}),
            ("invalid", "alice", b"\xff\xfe{}", ErrorCode.INVALID_JSON),
            ("invalid", "alice", b"plain bytes", ErrorCode.INVALID_JSON),
            ("message", "alice", {"after": True}),
        ]
        stats = manager.get_stats()
        expected_bytes = len('{"ü": 1}'.encode()) + 4 + len(b"plain bytes") + 15
        assert stats["bytes_received"] == expected_bytes
        assert stats["messages_received"] == 4
        await client.close()


# ---------------------------------------------------------------------------------------------
# Dead and slow clients
# ---------------------------------------------------------------------------------------------


async def test_dead_client_in_broadcast_is_dropped_and_counted_not_raised() -> None:
    manager = WebSocketConnectionManager()
    calls = record_disconnects(manager)
    async with running(manager) as (_, addr):
        alive = [await open_client(addr, f"/idle/{user}") for user in ("alice", "bob")]
        dead = await open_client(addr, "/idle/mallory")
        await wait_until(lambda: len(manager) == 3, "3 connections")
        (dead_id,) = manager.get_user_connections("mallory")
        dead.transport.abort()  # vanishes without a close frame

        sent = 0
        deadline = time.monotonic() + TIMEOUT
        while manager.get_stats()["failed_sends"] == 0:
            assert time.monotonic() < deadline, "the dead client was never detected"
            await manager.broadcast({"n": sent})  # must not raise
            sent += 1
            await asyncio.sleep(0.02)
        await wait_until(lambda: len(calls) == 1, "on_disconnect for the dead client")
        assert calls[0][0] == dead_id and calls[0][1] == 1006
        assert manager.get_user_connections("mallory") == []
        assert await manager.broadcast({"n": sent}) == 2
        for client in alive:
            assert [await recv_json(client) for _ in range(sent + 1)] == [
                {"n": n} for n in range(sent + 1)
            ]
        stats = manager.get_stats()
        assert (stats["failed_sends"], stats["total_connections"]) == (1, 2)
        for client in alive:
            await client.close()


async def open_stalled_client(addr: str, path: str) -> ClientConnection:
    """A client that buffers almost nothing, so not reading fills the TCP path quickly."""
    host, port = addr.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return await open_client(addr, path, sock=sock, max_queue=1, max_size=None)


FRAME = "x" * 256 * 1024  # large frames fill the stalled client's socket buffers fast


def without_suspending(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end in one step; fail if it had to wait for anything."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return cast(T, finished.value)
    coroutine.close()
    raise AssertionError("it waited (e.g. on a client's socket) instead of only queueing")


async def broadcast_until(manager: WebSocketConnectionManager, done: Callable[[], bool]) -> int:
    """Broadcast numbered large frames until ``done()``; return how many were sent.

    Each broadcast only queues: it finishes without waiting on any recipient's network.
    """
    sent = 0
    while not done():
        assert sent < 400, "the stalled client never overflowed its queue"
        without_suspending(manager.broadcast(f"{sent:04d}{FRAME}"))
        sent += 1
        await asyncio.sleep(0.001)  # let the writers run
    return sent


async def test_stalled_client_is_disconnected_4101_without_delaying_the_others() -> None:
    manager = WebSocketConnectionManager(send_queue_size=4)
    calls = record_disconnects(manager)
    async with running(manager) as (_, addr):
        stalled = await open_stalled_client(addr, "/ws/stalled")
        good = [await open_client(addr, f"/ws/good{n}", max_size=None) for n in range(2)]
        await wait_until(lambda: len(manager) == 3, "3 connections")
        (stalled_id,) = manager.get_user_connections("stalled")

        sent = await broadcast_until(
            manager, lambda: manager.get_stats()["slow_consumer_disconnects"] == 1
        )
        for client in good:  # everything, while the stalled client still reads nothing
            received = [await recv(client) for _ in range(sent)]
            assert [str(frame)[:4] for frame in received] == [f"{n:04d}" for n in range(sent)]
        # on_disconnect ran at once, before the stalled client read anything.
        await wait_until(lambda: len(calls) == 1, "on_disconnect for the stalled client")
        assert calls == [(stalled_id, CloseCode.SLOW_CONSUMER, "slow consumer")]
        assert manager.get_user_connections("stalled") == []
        assert await manager.broadcast("after") == 2

        # When it finally reads: what fitted in the pipe, then the 4101 close.
        code, reason = await wait_closed(stalled)
        assert (code, reason) == (CloseCode.SLOW_CONSUMER, "slow consumer")
        for client in good:
            assert await recv(client) == "after"
            await client.close()
        await wait_until(lambda: internal_maps_empty(manager), "empty manager")
        assert len(calls) == 3


async def test_stalled_client_under_drop_oldest_loses_oldest_frames_counted() -> None:
    manager = WebSocketConnectionManager(send_queue_size=4, overflow_policy="drop_oldest")
    async with running(manager) as (_, addr):
        stalled = await open_stalled_client(addr, "/ws/stalled")
        good = await open_client(addr, "/ws/good", max_size=None)
        await wait_until(lambda: len(manager) == 2, "2 connections")
        (stalled_id,) = manager.get_user_connections("stalled")
        connection = manager.get_connection(stalled_id)
        assert connection is not None

        sent = await broadcast_until(manager, lambda: connection.dropped >= 3)
        assert [str(await recv(good))[:4] for _ in range(sent)] == [f"{n:04d}" for n in range(sent)]
        assert manager.get_stats()["dropped_messages"] == connection.dropped
        assert manager.get_stats()["slow_consumer_disconnects"] == 0

        # Still connected; it gets every frame but the dropped ones, in order, newest included.
        numbers = [int(str(await recv(stalled))[:4]) for _ in range(sent - connection.dropped)]
        assert numbers == sorted(numbers) and numbers[-1] == sent - 1
        assert len(set(range(sent)) - set(numbers)) == connection.dropped
        assert manager.get_connection(stalled_id) is connection and not connection.closed
        await stalled.close()
        await good.close()
        await wait_until(lambda: internal_maps_empty(manager), "empty manager")


async def test_idle_connections_own_no_task_and_little_memory() -> None:
    manager = WebSocketConnectionManager()
    async with running(manager) as (_, addr):
        clients = [await open_client(addr, f"/idle/u{n}") for n in range(20)]
        await wait_until(lambda: len(manager) == 20, "20 connections")
        tasks_before = len(asyncio.all_tasks())
        assert await manager.broadcast({"hello": "all"}) == 20
        assert len(asyncio.all_tasks()) == tasks_before + 20  # one writer each while busy
        for connection in manager.connections():
            assert await connection.flush(TIMEOUT)
        await asyncio.sleep(0)
        assert all(c._writer is None for c in manager.connections())
        assert len(asyncio.all_tasks()) == tasks_before
        for client in clients:
            assert await recv_json(client) == {"hello": "all"}
            await client.close()

    # The manager's own per-connection bookkeeping (the socket itself is uvicorn's).
    class Owner:
        def _send_failed(self, connection: Connection, error: Exception) -> None: ...
        def _overflowed(self, connection: Connection) -> None: ...

    owner = Owner()
    stand_in: Any = object()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    made = [Connection(stand_in, f"user{n}", owner=owner) for n in range(1000)]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    per_connection = sum(s.size_diff for s in after.compare_to(before, "filename")) / len(made)
    assert per_connection < 2048, f"{per_connection:.0f} bytes per idle connection"


# ---------------------------------------------------------------------------------------------
# Lifecycle bookkeeping
# ---------------------------------------------------------------------------------------------


async def test_concurrent_connects_and_disconnects_leave_no_stale_entries() -> None:
    manager = WebSocketConnectionManager(max_connections_per_user=10)
    calls = record_disconnects(manager)
    async with running(manager) as (_, addr):

        async def client_closes(n: int) -> None:
            client = await open_client(addr, f"/ws/user{n % 20}?session=s{n}")
            await client.send(json.dumps({"n": n}))
            await client.close()

        async def server_closes(n: int) -> None:
            client = await open_client(addr, f"/ws/user{n % 20}?session=s{n}")
            await wait_until(lambda: manager.get_connection(f"s{n}") is not None, f"s{n}")
            await manager.disconnect(f"s{n}", 4002, "server side")
            await wait_closed(client)

        await asyncio.gather(*(client_closes(n) if n % 2 else server_closes(n) for n in range(200)))
        await wait_until(lambda: len(calls) == 200, "200 on_disconnect calls")
        await wait_until(lambda: internal_maps_empty(manager), "empty manager")
        stats = manager.get_stats()
        assert (stats["total_connections"], stats["total_users"], stats["total_connects"]) == (
            0,
            0,
            200,
        )
        assert len({cid for cid, _, _ in calls}) == 200
        assert sorted(code for _, code, _ in calls).count(4002) == 100


async def test_on_disconnect_runs_exactly_once_whatever_ends_the_connection() -> None:
    manager = WebSocketConnectionManager(send_queue_size=2)
    calls: list[tuple[str, int]] = []

    async def on_disconnect(connection: Connection, code: int, reason: str) -> None:
        await asyncio.sleep(0)
        calls.append((connection.user_id, code))

    manager.on_disconnect = on_disconnect
    async with running(manager) as (server, addr):
        explicit = await open_client(addr, "/ws/explicit")
        peer = await open_client(addr, "/ws/peer")
        dead = await open_client(addr, "/idle/dead")
        slow = await open_stalled_client(addr, "/ws/slow")
        await wait_until(lambda: len(manager) == 4, "4 connections")

        # First, so the server has seen the reset (a select away) long before the broadcasts:
        # the dead client's sends fail, rather than filling its queue as a slow one's would.
        dead.transport.abort()
        (explicit_id,) = manager.get_user_connections("explicit")
        await manager.disconnect(explicit_id, 4003)
        await manager.disconnect(explicit_id, 4004)
        assert await wait_closed(explicit) == (4003, "")
        await peer.close()
        await wait_until(lambda: len(calls) == 2, "explicit and peer")
        await broadcast_until(manager, lambda: len(manager) == 0)
        await wait_until(lambda: len(calls) == 4, "dead and slow")
        for user_id in ("explicit", "peer", "dead", "slow"):
            await manager.disconnect(user_id)  # unknown ids: no-ops
        slow.transport.abort()
        server.release.set()  # the idle endpoint's own disconnect() must be a no-op too
        # Every endpoint has returned and the manager has nothing left, not even a background
        # close: nothing is left that could call on_disconnect again.
        await wait_until(lambda: server.ended == 4, "every endpoint to return")
        await wait_until(lambda: internal_maps_empty(manager), "empty manager")
        assert sorted(calls) == [
            ("dead", 1006),
            ("explicit", 4003),
            ("peer", 1000),
            ("slow", CloseCode.SLOW_CONSUMER),
        ]


async def test_failing_on_disconnect_is_logged_and_never_propagates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = WebSocketConnectionManager()

    def on_disconnect(connection: Connection, code: int, reason: str) -> None:
        raise RuntimeError("plugin bug")

    manager.on_disconnect = on_disconnect
    async with running(manager) as (_, addr):
        client = await open_client(addr, "/ws/alice")
        await wait_until(lambda: len(manager) == 1, "connection")
        with caplog.at_level(logging.ERROR, logger="netrun_ws.connection_manager"):
            await manager.disconnect(manager.get_user_connections("alice")[0], 4005)
        assert await wait_closed(client) == (4005, "")
        assert "on_disconnect failed" in caplog.text and "plugin bug" in caplog.text
        assert internal_maps_empty(manager)


async def test_info_stats_close_idle_and_close_all() -> None:
    clock = ManualTime(start=1_700_000_000.0)
    manager = WebSocketConnectionManager(connection_timeout=300, clock=clock)
    async with running(manager) as (server, addr):
        alice = await open_client(addr, "/ws/alice")
        bob = await open_client(addr, "/ws/bob")
        await wait_until(lambda: len(manager) == 2, "2 connections")
        (alice_id,) = manager.get_user_connections("alice")
        clock.advance(1)
        await alice.send('{"ping": 1}')
        await manager.send_message(alice_id, {"pong": 1})
        assert await recv_json(alice) == {"pong": 1}
        await wait_until(lambda: len(server.events) == 1, "alice's message")

        info = manager.get_connection_info(alice_id)
        assert info is not None
        assert info["user_id"] == "alice" and info["session_id"] is None
        assert (info["messages_sent"], info["messages_received"]) == (1, 1)
        assert (info["bytes_sent"], info["bytes_received"]) == (10, 11)
        assert info["queue_length"] == 0 and info["metadata"] == {}
        assert (info["connected_at"], info["last_activity"]) == (clock.now - 1, clock.now)
        assert manager.get_connection_info("unknown") is None
        stats = manager.get_stats()
        assert stats["total_connections"] == 2 and stats["total_users"] == 2
        assert stats["connections_per_user"] == {"alice": 1, "bob": 1}
        assert stats["messages_sent"] == 1 and stats["max_connections_per_user"] == 5

        # bob stays quiet past connection_timeout; alice keeps talking.
        clock.advance(200)
        await alice.send('{"ping": 2}')
        await wait_until(lambda: len(server.events) == 2, "alice's second message")
        assert await manager.close_idle_connections() == 0  # bob: 201 s
        clock.advance(150)  # bob: 351 s without a frame, alice: 150 s
        assert await manager.close_idle_connections() == 1
        assert await wait_closed(bob) == (1001, "idle timeout")
        assert manager.get_user_connections("bob") == []

        assert await manager.close_all(code=1012, reason="restart") == 1
        assert await wait_closed(alice) == (1012, "restart")
        assert internal_maps_empty(manager)
        # Totals survive the connections they came from.
        assert manager.get_stats()["messages_received"] == 2
