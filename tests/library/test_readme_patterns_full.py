"""netrun-websocket's README patterns, written as a user would, in FastAPI and in plain Starlette.

One set of endpoint functions (the code an application would write) is mounted in a FastAPI app
(``app.websocket(path)``, what the ``@app.websocket`` decorator does) and in a Starlette app
(``WebSocketRoute``), served by a real uvicorn on loopback and driven by real ``websockets``
clients. The endpoints combine what the README shows piece by piece:

- a JWT read from the ``token`` query parameter, refused with 1008 (HTTP 403 before accept);
- ``manager.connect`` wrapped in ``try/except ValueError`` (the per-user limit);
- a ``HeartbeatMonitor`` pinging with ``{"type": "ping"}`` and disconnecting silent clients;
- ``MetricsCollector`` recording around receive and send;
- ``WebSocketSessionManager`` on a real redis-server, its connection id used as ``session_id``;
- ``broadcast(..., exclude_users={user_id})``, ``send_to_user`` and ``disconnect`` in ``finally``.

docs/library.md shows the same code; keep the two in step.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from netrun_ws import (
    ErrorMessage,
    HeartbeatConfig,
    HeartbeatMonitor,
    InvalidMessageError,
    JWTAuthService,
    MetricsCollector,
    UserMessage,
    WebSocketConnectionManager,
    WebSocketSessionManager,
    parse_message,
)
from netrun_ws.codes import CloseCode, ErrorCode
from tests.support.manual_time import ManualTime
from tests.support.redis_server import RedisServer
from tests.support.server import serve

pytestmark = pytest.mark.timeout(60)

LIBRARY_DOC = Path(__file__).resolve().parents[2] / "docs" / "library.md"

TIMEOUT = 5.0
SECRET = "readme-pattern-test-secret-0123456789abcdef"
#: Long enough that no ping interleaves with the frames a non-heartbeat test expects.
QUIET_HEARTBEAT = HeartbeatConfig(interval=30, timeout=90)

Endpoint = Callable[[WebSocket], Awaitable[None]]


# ---------------------------------------------------------------------------------------------
# The application: what a user of netrun-websocket writes
# ---------------------------------------------------------------------------------------------


@dataclass
class Services:
    """The library objects an application creates once, at module level in a real app."""

    manager: WebSocketConnectionManager
    auth: JWTAuthService
    monitor: HeartbeatMonitor
    metrics: MetricsCollector
    sessions: WebSocketSessionManager
    #: What each endpoint call ended with, appended last (a sync point for the tests).
    outcomes: list[str] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        manager, monitor = self.manager, self.monitor

        async def ping(connection_id: str) -> None:
            await manager.send_message(connection_id, {"type": "ping"})

        async def cleanup(connection_id: str) -> None:
            await manager.disconnect(
                connection_id, code=CloseCode.HEARTBEAT_TIMEOUT, reason="heartbeat timeout"
            )

        await self.sessions.initialize()
        await monitor.start(ping_callback=ping, cleanup_callback=cleanup)
        try:
            yield
        finally:
            await monitor.stop()
            await manager.close_all()
            await self.sessions.close()

    def endpoints(self) -> list[tuple[str, Endpoint]]:
        manager, auth, monitor, metrics = self.manager, self.auth, self.monitor, self.metrics
        sessions, outcomes = self.sessions, self.outcomes

        async def chat_endpoint(websocket: WebSocket) -> None:
            token = websocket.query_params.get("token", "")
            payload = auth.validate_token(token)
            if payload is None:
                await websocket.close(code=1008)
                outcomes.append("rejected: invalid token")
                return
            user_id: str = payload["user_id"]
            try:
                connection_id = await manager.connect(websocket, user_id)
            except ValueError as refusal:  # over the per-user limit: already closed (HTTP 403)
                outcomes.append(f"refused: {refusal}")
                return
            monitor.register_connection(connection_id)
            metrics.register_connection(connection_id, user_id)
            try:
                welcome = {"type": "connect", "connection_id": connection_id, "user_id": user_id}
                await manager.send_message(connection_id, welcome)
                while True:
                    try:
                        data = await manager.receive_message(connection_id)
                    except InvalidMessageError as bad:  # consumed; the next frame still comes
                        metrics.record_error(connection_id)
                        reply = ErrorMessage(error=bad.error, code=bad.code)
                        await manager.send_message(connection_id, reply)
                        continue
                    if data is None:
                        break
                    metrics.record_message_received(connection_id, len(json.dumps(data)))
                    if data.get("type") == "pong":
                        monitor.update_heartbeat(connection_id)
                    elif data.get("type") == "user_message":
                        started = time.perf_counter()
                        chat = UserMessage(
                            user_id=user_id,
                            username=payload.get("username", user_id),
                            content=str(data.get("content", "")),
                        )
                        delivered = await manager.broadcast(chat, exclude_users={user_id})
                        ack = json.dumps({"type": "ack", "delivered": delivered})
                        await manager.send_to_user(user_id, ack)
                        metrics.record_message_sent(connection_id, len(ack))
                        metrics.record_latency((time.perf_counter() - started) * 1000)
            finally:
                await manager.disconnect(connection_id)
                monitor.unregister_connection(connection_id)
                metrics.unregister_connection(connection_id)
                outcomes.append(f"closed: {user_id}")

        async def session_endpoint(websocket: WebSocket) -> None:
            token = websocket.query_params.get("token", "")
            payload = auth.validate_token(token)
            session_id = websocket.query_params.get("session", "")
            if payload is None or not session_id:
                await websocket.close(code=1008)
                outcomes.append("rejected: invalid token or no session")
                return
            user_id: str = payload["user_id"]
            connection_id = await sessions.create_connection(
                session_id=session_id, user_id=user_id, username=payload.get("username", user_id)
            )
            try:
                await manager.connect(websocket, user_id, session_id=connection_id)
            except ValueError as refusal:
                await sessions.disconnect(connection_id, save_state=False)
                outcomes.append(f"refused: {refusal}")
                return
            save_state = True
            try:
                restored = await sessions.restore_connection_state(connection_id)
                welcome = {"type": "connect", "connection_id": connection_id, "state": restored}
                await manager.send_message(connection_id, welcome)
                while True:
                    data = await manager.receive_message(connection_id)
                    if data is None:
                        break
                    if data.get("type") == "heartbeat":
                        await sessions.update_heartbeat(connection_id)
                        await manager.send_message(connection_id, {"type": "heartbeat_ack"})
                    elif data.get("type") == "save":
                        saved = await sessions.save_connection_state(connection_id, data["state"])
                        await manager.send_message(connection_id, {"type": "ack", "saved": saved})
                    elif data.get("type") == "logout":
                        save_state = False
                        break
            finally:
                await manager.disconnect(connection_id)
                await sessions.disconnect(connection_id, save_state=save_state)
                outcomes.append(f"closed: {user_id}")

        return [("/chat", chat_endpoint), ("/session", session_endpoint)]


def fastapi_app(services: Services) -> Starlette:
    app = FastAPI(lifespan=services.lifespan)
    for path, endpoint in services.endpoints():
        app.websocket(path)(endpoint)  # exactly what @app.websocket(path) does
    return app


def starlette_app(services: Services) -> Starlette:
    routes = [WebSocketRoute(path, endpoint) for path, endpoint in services.endpoints()]
    return Starlette(routes=routes, lifespan=services.lifespan)


AppFactory = Callable[[Services], Starlette]
frameworks = pytest.mark.parametrize(
    "make_app", [fastapi_app, starlette_app], ids=["fastapi", "starlette"]
)


# ---------------------------------------------------------------------------------------------
# Test helpers
# ---------------------------------------------------------------------------------------------


def make_services(
    *,
    max_connections_per_user: int = 5,
    monitor: HeartbeatMonitor | None = None,
    sessions: WebSocketSessionManager | None = None,
) -> Services:
    return Services(
        manager=WebSocketConnectionManager(max_connections_per_user=max_connections_per_user),
        auth=JWTAuthService(SECRET),
        monitor=monitor if monitor is not None else HeartbeatMonitor(QUIET_HEARTBEAT),
        metrics=MetricsCollector(),
        sessions=sessions if sessions is not None else WebSocketSessionManager(),
    )


@contextlib.asynccontextmanager
async def running(make_app: AppFactory, services: Services) -> AsyncIterator[str]:
    async with serve(make_app(services)) as addr:
        yield addr


async def open_client(addr: str, path: str, token: str | None, **query: str) -> ClientConnection:
    params = dict(query)
    if token is not None:
        params["token"] = token
    suffix = "&".join(f"{key}={value}" for key, value in params.items())
    return await connect(f"ws://{addr}{path}?{suffix}", open_timeout=TIMEOUT)


async def recv_json(client: ClientConnection) -> dict[str, Any]:
    frame = await asyncio.wait_for(client.recv(), TIMEOUT)
    message = json.loads(frame)
    assert isinstance(message, dict), frame
    return message


async def send_json(client: ClientConnection, message: dict[str, Any]) -> str:
    frame = json.dumps(message)
    await client.send(frame)
    return frame


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def join_chat(addr: str, services: Services, user_id: str) -> tuple[ClientConnection, str]:
    """A client connected to /chat as ``user_id``, and its connection id (from the welcome)."""
    client = await open_client(addr, "/chat", services.auth.generate_token(user_id))
    welcome = await recv_json(client)
    assert welcome["type"] == "connect" and welcome["user_id"] == user_id
    connection_id: str = welcome["connection_id"]
    return client, connection_id


def assert_no_stale_entries(services: Services) -> None:
    stats = services.manager.get_stats()
    assert stats["total_connections"] == 0
    assert stats["total_users"] == 0
    assert stats["connections_per_user"] == {}
    assert stats["pending_connections"] == 0
    assert len(services.manager) == 0
    assert services.monitor.get_stats()["total_connections"] == 0
    assert services.metrics.get_stats()["active_connections"] == 0
    assert services.metrics.get_stats()["unique_users"] == 0


def expired_token(user_id: str) -> str:
    now = int(time.time())
    claims = {"user_id": user_id, "sub": user_id, "iat": now - 120, "exp": now - 60}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any]) -> str:
    """An ``alg: none`` token: no signature at all."""
    return f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims)}."


def tampered_token(token: str) -> str:
    """``token`` with its payload changed to another user and the old signature kept."""
    header, _, signature = token.split(".")
    forged = {"user_id": "mallory", "sub": "mallory", "iat": 0, "exp": int(time.time()) + 600}
    return f"{header}.{b64url(forged)}.{signature}"


# ---------------------------------------------------------------------------------------------
# (a) JWT from a query parameter; connect wrapped in try/except ValueError
# ---------------------------------------------------------------------------------------------


@frameworks
async def test_jwt_from_query_parameter_admits_only_valid_tokens(make_app: AppFactory) -> None:
    services = make_services()
    good = services.auth.generate_token("alice", additional_claims={"username": "Alice"})
    unsigned = unsigned_token({"user_id": "alice", "exp": int(time.time()) + 60})
    no_exp = jwt.encode({"user_id": "alice"}, SECRET, algorithm="HS256")  # python-jose era
    other_key = JWTAuthService("another-secret-of-the-same-length-0123456789")
    bad_tokens = {
        "missing": None,
        "empty": "",
        "garbage": "not.a.jwt",
        "expired": expired_token("alice"),
        "tampered": tampered_token(good),
        "alg none": unsigned,
        "no exp": no_exp,
        "other key": other_key.generate_token("alice"),
    }
    async with running(make_app, services) as addr:
        for name, token in bad_tokens.items():
            with pytest.raises(InvalidStatus) as refused:
                await open_client(addr, "/chat", token)
            assert refused.value.response.status_code == 403, name
        assert services.outcomes == ["rejected: invalid token"] * len(bad_tokens)
        assert len(services.manager) == 0

        client = await open_client(addr, "/chat", good)
        welcome = await recv_json(client)
        assert welcome["user_id"] == "alice"  # the user id came from the verified token
        assert services.manager.get_user_connections("alice") == [welcome["connection_id"]]
        await client.close()
        await wait_until(lambda: "closed: alice" in services.outcomes, "the handler to finish")
        assert_no_stale_entries(services)


@frameworks
async def test_per_user_limit_is_a_value_error_and_http_403(make_app: AppFactory) -> None:
    services = make_services(max_connections_per_user=2)
    async with running(make_app, services) as addr:
        tabs = [await join_chat(addr, services, "alice") for _ in range(2)]
        with pytest.raises(InvalidStatus) as refused:
            await open_client(addr, "/chat", services.auth.generate_token("alice"))
        assert refused.value.response.status_code == 403
        await wait_until(lambda: len(services.outcomes) == 1, "the refused handler to return")
        assert services.outcomes[0].startswith("refused: max_connections_per_user (2)")
        # The refused socket never reached the monitor or the metrics.
        assert services.monitor.get_stats()["total_connections"] == 2
        assert services.metrics.get_user_metrics("alice")["active_connections"] == 2

        bob, _ = await join_chat(addr, services, "bob")  # the limit is per user
        for client in (*(tab for tab, _ in tabs), bob):
            await client.close()
        await wait_until(lambda: len(services.outcomes) == 4, "every handler to finish")
        assert_no_stale_entries(services)


# ---------------------------------------------------------------------------------------------
# (b) Heartbeat: ping via send_message, update_heartbeat on pong, cleanup disconnects
# ---------------------------------------------------------------------------------------------


async def answer_pings(client: ClientConnection, pings: list[float]) -> None:
    """What a well-behaved client does: answer every {"type": "ping"} with a pong."""
    with contextlib.suppress(ConnectionClosed):
        async for frame in client:
            if json.loads(frame).get("type") == "ping":
                pings.append(time.monotonic())
                await client.send(json.dumps({"type": "pong"}))


@frameworks
async def test_heartbeat_keeps_responsive_clients_and_cleans_up_silent_ones(
    make_app: AppFactory,
) -> None:
    # The monitor's passes run when the test steps its manual time, one interval apart on its
    # clock: what happens at each pass does not depend on how fast this machine is.
    clock = ManualTime()
    heartbeat = HeartbeatConfig(interval=10, timeout=30, max_missed=3)
    services = make_services(monitor=HeartbeatMonitor(heartbeat, clock=clock, sleep=clock.sleep))
    async with running(make_app, services) as addr:
        steady, steady_id = await join_chat(addr, services, "steady")
        silent, silent_id = await join_chat(addr, services, "silent")
        pings: list[float] = []
        answering = asyncio.create_task(answer_pings(steady, pings))

        passes = 0

        async def heartbeat_pass() -> None:
            """One pass; then wait until the server has steady's pong to that pass's ping."""
            nonlocal passes
            await clock.step()
            passes += 1
            await wait_until(lambda: steady_pongs() == passes, "steady's pong")

        def steady_pongs() -> int:
            numbers = services.metrics.get_connection_metrics(steady_id)
            return 0 if numbers is None else int(numbers["messages_received"])

        try:
            # The silent client is read only by the websockets library (pings queue up unread).
            # Pass 1 pings it; passes 2, 3 and 4 find it missed 1, 2, then 3 of them: stale.
            for _ in range(3):
                await heartbeat_pass()
            assert services.manager.get_connection(silent_id) is not None
            await heartbeat_pass()
            await asyncio.wait_for(silent.wait_closed(), TIMEOUT)
            assert silent.close_code == CloseCode.HEARTBEAT_TIMEOUT
            assert silent.close_reason == "heartbeat timeout"
            await wait_until(lambda: "closed: silent" in services.outcomes, "silent's handler")
            assert services.manager.get_connection(silent_id) is None
            assert services.metrics.get_connection_metrics(silent_id) is None

            # The responsive client outlives several more passes (and the timeout, many times).
            for _ in range(5):
                await heartbeat_pass()
            assert len(pings) == passes == 9
            assert services.manager.get_connection(steady_id) is not None
            assert not services.monitor.is_stale(steady_id)
            stats = services.monitor.get_stats()
            assert stats["cleanups"] == 1
            assert stats["total_connections"] == stats["healthy_connections"] == 1
            # Every pong went through the handler and the metrics.
            assert steady_pongs() == passes == 9
        finally:
            await steady.close()
            await asyncio.wait_for(answering, TIMEOUT)
        await wait_until(lambda: "closed: steady" in services.outcomes, "steady's handler")
        assert_no_stale_entries(services)


# ---------------------------------------------------------------------------------------------
# (c) Metrics around receive and send reflect the real traffic
# ---------------------------------------------------------------------------------------------


@frameworks
async def test_metrics_recorded_around_receive_and_send(make_app: AppFactory) -> None:
    services = make_services()
    metrics = services.metrics
    async with running(make_app, services) as addr:
        client, connection_id = await join_chat(addr, services, "alice")
        sent_frames = [await send_json(client, {"type": "pong"})]
        ack_frames: list[str] = []
        for n in range(3):
            sent_frames.append(await send_json(client, {"type": "user_message", "content": n}))
            ack = await asyncio.wait_for(client.recv(), TIMEOUT)
            assert isinstance(ack, str) and json.loads(ack) == {"type": "ack", "delivered": 0}
            ack_frames.append(ack)
        await client.send("{broken")
        error = await recv_json(client)
        assert error["type"] == "error" and error["code"] == ErrorCode.INVALID_JSON

        user = metrics.get_user_metrics("alice")
        assert user["active_connections"] == 1 and user["connection_ids"] == [connection_id]
        assert user["messages_received"] == 4
        assert user["bytes_received"] == sum(len(frame) for frame in sent_frames)
        assert user["messages_sent"] == 3
        assert user["bytes_sent"] == sum(len(frame) for frame in ack_frames)
        assert user["errors"] == 1
        # The manager counted the same frames on the wire (plus the invalid one).
        info = services.manager.get_connection_info(connection_id)
        assert info is not None
        assert info["messages_received"] == 5
        assert info["bytes_received"] == user["bytes_received"] + len("{broken")

        stats = metrics.get_stats()
        assert stats["latency_samples"] == 3
        assert 0 <= stats["latency_min_ms"] <= stats["latency_p50_ms"] <= stats["latency_max_ms"]
        assert stats["latency_max_ms"] < TIMEOUT * 1000
        assert stats["total_messages"] == 7 and stats["errors"] == 1

        await client.close()
        await wait_until(lambda: "closed: alice" in services.outcomes, "the handler to finish")
        # Per-user numbers go with the connection; the totals stay.
        assert metrics.get_user_metrics("alice")["messages_received"] == 0
        after = metrics.get_stats()
        assert after["messages_received"] == 4 and after["messages_sent"] == 3
        assert after["total_connections"] == 1 and after["peak_connections"] == 1
        assert_no_stale_entries(services)


# ---------------------------------------------------------------------------------------------
# (d) The Redis session manager inside the endpoint, its connection id as the address
# ---------------------------------------------------------------------------------------------


@frameworks
async def test_redis_session_manager_inside_the_endpoint(
    make_app: AppFactory, redis_server: RedisServer
) -> None:
    prefix = f"readme_{uuid.uuid4().hex[:10]}"
    clock = ManualTime(time.time())
    sessions = WebSocketSessionManager(redis_url=redis_server.url, key_prefix=prefix, clock=clock)
    services = make_services(sessions=sessions)
    raw = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    token = services.auth.generate_token("alice")
    try:
        async with running(make_app, services) as addr:
            client = await open_client(addr, "/session", token, session="tab-1")
            welcome = await recv_json(client)
            connection_id = welcome["connection_id"]
            assert welcome["state"] is None  # a new session has nothing to restore
            # The session manager's id addresses the live socket in the connection manager.
            connection = services.manager.get_connection(connection_id)
            assert connection is not None and connection.user_id == "alice"
            assert connection.session_id == connection_id != connection.connection_id
            assert await raw.exists(f"{prefix}:conn:{connection_id}") == 1
            assert await raw.smembers(f"{prefix}:user:alice") == {connection_id}
            record = await sessions.get_connection(connection_id)
            assert record is not None and record["session_id"] == "tab-1"

            clock.advance(5)  # so the heartbeat's timestamp is later
            await send_json(client, {"type": "heartbeat"})
            assert await recv_json(client) == {"type": "heartbeat_ack"}
            record_after = await sessions.get_connection(connection_id)
            assert record_after is not None
            assert record_after["last_heartbeat"] == record["last_heartbeat"] + 5
            score = await raw.zscore(f"{prefix}:heartbeats", connection_id)
            assert score == pytest.approx(record_after["last_heartbeat"])

            await send_json(client, {"type": "save", "state": {"cursor": 7}})
            assert await recv_json(client) == {"type": "ack", "saved": True}
            await client.close()
            await wait_until(lambda: services.outcomes == ["closed: alice"], "the handler")
            # Only the session's saved state outlives the connection (save_state=True).
            assert await raw.keys(f"{prefix}:*") == [f"{prefix}:state:tab-1"]
            assert 0 < await raw.pttl(f"{prefix}:state:tab-1") <= 3_600_000

            # A reconnect with the same session id gets a new connection id and the state.
            again = await open_client(addr, "/session", token, session="tab-1")
            welcome_again = await recv_json(again)
            assert welcome_again["state"] == {"cursor": 7}
            assert welcome_again["connection_id"] != connection_id
            await send_json(again, {"type": "logout"})  # handler disconnects, save_state=False
            await asyncio.wait_for(again.wait_closed(), TIMEOUT)
            assert again.close_code == 1000
            await wait_until(lambda: len(services.outcomes) == 2, "the second handler")
            assert await raw.keys(f"{prefix}:*") == []
            assert services.manager.get_connection(welcome_again["connection_id"]) is None
            assert_no_stale_entries(services)
    finally:
        await raw.aclose()


@frameworks
async def test_refused_connect_removes_the_session_entry(
    make_app: AppFactory, redis_server: RedisServer
) -> None:
    prefix = f"readme_{uuid.uuid4().hex[:10]}"
    clock = ManualTime(time.time())
    sessions = WebSocketSessionManager(redis_url=redis_server.url, key_prefix=prefix, clock=clock)
    services = make_services(max_connections_per_user=1, sessions=sessions)
    raw = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    token = services.auth.generate_token("alice")
    try:
        async with running(make_app, services) as addr:
            first = await open_client(addr, "/session", token, session="tab-1")
            await recv_json(first)
            with pytest.raises(InvalidStatus) as refused:
                await open_client(addr, "/session", token, session="tab-2")
            assert refused.value.response.status_code == 403
            await wait_until(lambda: len(services.outcomes) == 1, "the refused handler")
            assert services.outcomes[0].startswith("refused: max_connections_per_user (1)")
            assert len(await raw.keys(f"{prefix}:conn:*")) == 1
            assert (await sessions.get_connection_stats())["total_connections"] == 1
            await first.close()
            await wait_until(lambda: len(services.outcomes) == 2, "the first handler")
            assert await raw.keys(f"{prefix}:conn:*") == []
    finally:
        await raw.aclose()


# ---------------------------------------------------------------------------------------------
# (e) broadcast(..., exclude_users={user_id}) and send_to_user with several clients
# ---------------------------------------------------------------------------------------------


async def recv_chat(client: ClientConnection) -> UserMessage:
    message = parse_message(await asyncio.wait_for(client.recv(), TIMEOUT))
    assert isinstance(message, UserMessage)
    return message


@frameworks
async def test_broadcast_excludes_the_sender_and_send_to_user_reaches_every_tab(
    make_app: AppFactory,
) -> None:
    services = make_services()
    async with running(make_app, services) as addr:
        alice_1, _ = await join_chat(addr, services, "alice")
        alice_2, _ = await join_chat(addr, services, "alice")
        bob, _ = await join_chat(addr, services, "bob")
        carol, _ = await join_chat(addr, services, "carol")

        await send_json(alice_1, {"type": "user_message", "content": "hello"})
        for other in (bob, carol):
            chat = await recv_chat(other)
            assert (chat.user_id, chat.username, chat.content) == ("alice", "alice", "hello")
        # Both of alice's tabs get the ack; the broadcast was queued before it, so an ack as
        # the first frame of tab 2 proves the broadcast skipped it.
        for tab in (alice_1, alice_2):
            assert await recv_json(tab) == {"type": "ack", "delivered": 2}

        await send_json(bob, {"type": "user_message", "content": "hi all"})
        for other in (alice_1, alice_2, carol):
            assert (await recv_chat(other)).content == "hi all"
        assert await recv_json(bob) == {"type": "ack", "delivered": 3}

        for client in (alice_1, alice_2, bob, carol):
            await client.close()
        await wait_until(lambda: len(services.outcomes) == 4, "every handler to finish")
        assert_no_stale_entries(services)


@frameworks
async def test_invalid_frame_gets_an_error_reply_and_the_next_frame_is_delivered(
    make_app: AppFactory,
) -> None:
    services = make_services()
    async with running(make_app, services) as addr:
        alice, _ = await join_chat(addr, services, "alice")
        bob, _ = await join_chat(addr, services, "bob")
        await alice.send("this is not JSON")
        await alice.send("[1, 2, 3]")
        await send_json(alice, {"type": "user_message", "content": "still here"})
        not_json = parse_message(await asyncio.wait_for(alice.recv(), TIMEOUT))
        assert isinstance(not_json, ErrorMessage) and not_json.code == ErrorCode.INVALID_JSON
        not_object = parse_message(await asyncio.wait_for(alice.recv(), TIMEOUT))
        assert isinstance(not_object, ErrorMessage)
        assert not_object.code == ErrorCode.INVALID_MESSAGE
        assert await recv_json(alice) == {"type": "ack", "delivered": 1}
        assert (await recv_chat(bob)).content == "still here"
        for client in (alice, bob):
            await client.close()
        await wait_until(lambda: len(services.outcomes) == 2, "both handlers to finish")
        assert_no_stale_entries(services)


# ---------------------------------------------------------------------------------------------
# (f) disconnect in finally leaves nothing behind, however the client left
# ---------------------------------------------------------------------------------------------


@frameworks
async def test_disconnect_in_finally_leaves_no_stale_entries(make_app: AppFactory) -> None:
    services = make_services()
    users = ["alice", "bob", "carol"]
    async with running(make_app, services) as addr:
        clients = await asyncio.gather(
            *(join_chat(addr, services, users[n % 3]) for n in range(12))
        )
        assert len(services.manager) == 12
        assert services.monitor.get_stats()["total_connections"] == 12
        assert services.metrics.get_stats()["unique_users"] == 3

        # Half close politely, half vanish without a close frame (a dropped network).
        polite, abrupt = clients[::2], clients[1::2]
        for client, _ in abrupt:
            client.transport.abort()
        await asyncio.gather(*(client.close() for client, _ in polite))
        await wait_until(lambda: len(services.outcomes) == 12, "every handler to finish")
        assert sorted(services.outcomes) == sorted(f"closed: {users[n % 3]}" for n in range(12))
        for _, connection_id in clients:
            assert services.manager.get_connection(connection_id) is None
        for user in users:
            assert services.manager.get_user_connections(user) == []
        assert_no_stale_entries(services)
        assert services.manager.get_stats()["total_connects"] == 12


# ---------------------------------------------------------------------------------------------
# docs/library.md: its Python blocks run as one script, and its apps serve real clients
# ---------------------------------------------------------------------------------------------


def run_library_doc() -> dict[str, Any]:
    """Execute every ```python block of docs/library.md in order, in one namespace.

    ``dont_inherit``: the blocks run as a user's script would, without this module's
    ``from __future__ import annotations``.
    """
    blocks = re.findall(r"^```python\n(.*?)^```$", LIBRARY_DOC.read_text(), re.DOTALL | re.M)
    assert len(blocks) >= 8, "docs/library.md lost its examples"
    namespace: dict[str, Any] = {"__name__": "library_doc"}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"docs/library.md block {number}", "exec", dont_inherit=True)
        exec(code, namespace)
    return namespace


async def test_library_doc_examples_run_and_serve(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    # In a thread: the blocks call asyncio.run(), which needs a thread without a running loop.
    doc = await asyncio.to_thread(run_library_doc)
    auth: JWTAuthService = doc["auth"]
    manager: WebSocketConnectionManager = doc["manager"]
    sessions: WebSocketSessionManager = doc["sessions"]
    try:
        async with serve(doc["app"]) as addr:  # the FastAPI app
            with pytest.raises(InvalidStatus) as refused:
                await open_client(addr, "/ws", "forged.token.here")
            assert refused.value.response.status_code == 403

            alice = await open_client(addr, "/ws", auth.generate_token("alice"))
            bob = await open_client(addr, "/ws", auth.generate_token("bob"))
            for client, user in ((alice, "alice"), (bob, "bob")):
                assert (await recv_json(client))["user_id"] == user
            await send_json(alice, {"type": "user_message", "content": "from the docs"})
            assert (await recv_chat(bob)).content == "from the docs"
            assert await recv_json(alice) == {"type": "ack", "delivered": 1}
            await alice.send("oops")
            assert (await recv_json(alice))["code"] == ErrorCode.INVALID_JSON

            token = auth.generate_token("carol")
            tab = await open_client(addr, "/session", token, session="doc-tab")
            assert (await recv_json(tab))["state"] is None
            await send_json(tab, {"type": "save", "state": {"page": 3}})
            assert await recv_json(tab) == {"type": "ack", "saved": True}
            await tab.close()
            await wait_until(lambda: not manager.get_user_connections("carol"), "carol gone")
            again = await open_client(addr, "/session", token, session="doc-tab")
            assert (await recv_json(again))["state"] == {"page": 3}
            await send_json(again, {"type": "logout"})
            await asyncio.wait_for(again.wait_closed(), TIMEOUT)
            for client in (alice, bob):
                await client.close()
            await wait_until(lambda: len(manager) == 0, "every doc connection to end")
            assert (await sessions.get_connection_stats())["total_connections"] == 0

        async with serve(doc["starlette_app"]) as addr:  # the same endpoint in Starlette
            dave = await open_client(addr, "/ws", auth.generate_token("dave"))
            assert (await recv_json(dave))["user_id"] == "dave"
            await send_json(dave, {"type": "user_message", "content": "solo"})
            assert await recv_json(dave) == {"type": "ack", "delivered": 0}
            await dave.close()
            await wait_until(lambda: len(manager) == 0, "dave gone")
        assert doc["metrics"].get_stats()["active_connections"] == 0
        assert doc["monitor"].get_stats()["total_connections"] == 0
    finally:
        await sessions.close()
