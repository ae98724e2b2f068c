"""netrun-websocket 1.0's README examples and API, unchanged, in a real FastAPI app (issue 16).

Written from the 1.0 README and published API as a 1.0 user wrote them: imports from the 1.0
submodules, one-argument callbacks, ``connect`` with 1.0's arguments, ``authenticate_websocket``
and ``TokenAuthMiddleware``, a negative ``expiry_seconds`` to build an expired token. Served by a
real uvicorn on loopback and driven by real ``websockets`` clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from netrun.websocket.auth import JWTAuthService, TokenAuthMiddleware, authenticate_websocket
from netrun.websocket.connection_manager import ConnectionMetadata, WebSocketConnectionManager
from netrun.websocket.heartbeat import HeartbeatConfig, HeartbeatMonitor
from netrun.websocket.metrics import MetricsCollector
from netrun.websocket.reconnection import (
    ReconnectionConfig,
    ReconnectionManager,
    ReconnectionTracker,
)
from netrun.websocket.session_manager import WebSocketConnection, WebSocketSessionManager
from tests.support.server import serve

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 5.0
SECRET = "compat-readme-test-secret-0123456789abcdef"


def make_app(refuse_first: int = 0) -> tuple[FastAPI, dict[str, Any]]:
    """The app a 1.0 user wrote; ``refuse_first`` /chat handshakes are refused (server busy)."""
    manager = WebSocketConnectionManager(max_connections_per_user=5)
    auth_service = JWTAuthService(secret_key=SECRET)
    middleware = TokenAuthMiddleware(auth_service)
    sessions = WebSocketSessionManager()
    metrics = MetricsCollector()
    state: dict[str, Any] = {"manager": manager, "auth": auth_service, "refused": 0}
    app = FastAPI()

    @app.websocket("/ws")
    async def websocket_endpoint(websocket: WebSocket) -> None:
        payload = await authenticate_websocket(
            websocket, websocket.query_params.get("token"), auth_service
        )
        await echo_claims(websocket, payload)

    @app.websocket("/middleware")
    async def middleware_endpoint(websocket: WebSocket) -> None:
        payload = await middleware.authenticate(websocket, websocket.query_params.get("token"))
        await echo_claims(websocket, payload)

    async def echo_claims(websocket: WebSocket, payload: dict[str, Any]) -> None:
        connection_id = await manager.connect(websocket, payload["user_id"])
        try:
            await manager.send_message(connection_id, {"type": "welcome", "claims": payload})
        finally:
            await manager.disconnect(connection_id)

    @app.websocket("/chat/{user_id}")
    async def chat_endpoint(websocket: WebSocket, user_id: str) -> None:
        if state["refused"] < refuse_first:
            state["refused"] += 1
            await websocket.close(code=1013)  # before accept: HTTP 403
            return
        session_cid = await sessions.create_connection(
            session_id=websocket.query_params.get("session", "s1"),
            user_id=user_id,
            username=user_id.title(),
            client_ip=websocket.client.host if websocket.client else None,
        )
        # 1.0's connect: session_id, endpoint, ip_address, user_agent positionally.
        connection_id = await manager.connect(
            websocket,
            user_id,
            session_cid,
            "/chat",
            websocket.client.host if websocket.client else None,
            websocket.headers.get("user-agent"),
        )
        metrics.register_connection(connection_id, user_id)
        try:
            while True:
                data = await manager.receive_message(connection_id)
                if data is None:
                    break
                metrics.record_message_received(connection_id)  # 1.0: size_bytes defaults to 0
                if data.get("type") == "whoami":
                    record = manager.get_connection_metadata(connection_id)
                    assert isinstance(record, ConnectionMetadata)
                    session = await sessions.get_connection(session_cid)
                    assert isinstance(session, WebSocketConnection)
                    same_tab = await sessions.get_session_connections(session.session_id)
                    reply = {
                        "type": "whoami",
                        "connection": record.to_dict(),
                        "session": {"username": session.username, "ip": session.client_ip},
                        "session_connections": len(same_tab),
                    }
                    await manager.send_message(connection_id, reply)
                    metrics.record_message_sent(connection_id)
        finally:
            await manager.disconnect(connection_id)
            await sessions.disconnect(session_cid)
            metrics.unregister_connection(connection_id)

    return app, state


@contextlib.asynccontextmanager
async def running(refuse_first: int = 0) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    app, state = make_app(refuse_first)
    async with serve(app) as addr:
        try:
            yield addr, state
        finally:
            await state["manager"].close_all()


async def open_client(addr: str, path: str, **kwargs: Any) -> ClientConnection:
    return await connect(f"ws://{addr}{path}", open_timeout=TIMEOUT, **kwargs)


async def recv_json(client: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(client.recv(), TIMEOUT))


@pytest.mark.parametrize("path", ["/ws", "/middleware"])
async def test_authenticate_websocket_and_middleware(path: str) -> None:
    async with running() as (addr, state):
        auth: JWTAuthService = state["auth"]
        token = auth.generate_token("alice", additional_claims={"role": "admin"})
        client = await open_client(addr, f"{path}?token={token}")
        welcome = await recv_json(client)
        assert welcome["type"] == "welcome"
        assert welcome["claims"]["user_id"] == "alice" and welcome["claims"]["role"] == "admin"
        await client.close()

        expired = auth.generate_token("alice", expiry_seconds=-10)  # 1.0's way to test expiry
        for query in ("", "?token=", f"?token={expired}", "?token=not-a-jwt"):
            with pytest.raises(InvalidStatus) as refused:  # 1008 before accept: HTTP 403
                await open_client(addr, f"{path}{query}")
            assert refused.value.response.status_code == 403


async def test_authenticate_websocket_raises_1008_with_the_reason() -> None:
    from starlette.exceptions import WebSocketException

    auth = JWTAuthService(secret_key=SECRET)
    cases = {
        None: "Missing authentication token",
        auth.generate_token("u", expiry_seconds=-10): "Token expired",
        "garbage": "Invalid authentication token",
    }
    for token, reason in cases.items():
        with pytest.raises(WebSocketException) as raised:
            await authenticate_websocket(None, token, auth)  # type: ignore[arg-type]
        assert (raised.value.code, raised.value.reason) == (1008, reason)
        assert token is None or token not in raised.value.reason
    claims = await TokenAuthMiddleware(auth).authenticate(None, auth.generate_token("u"))  # type: ignore[arg-type]
    assert claims["user_id"] == "u"


async def test_connect_with_1_0_arguments_and_connection_metadata() -> None:
    async with running() as (addr, _):
        client = await open_client(addr, "/chat/alice", user_agent_header="compat-client/1.0")
        await client.send(json.dumps({"type": "whoami"}))
        reply = await recv_json(client)
        record = reply["connection"]
        assert record["user_id"] == "alice" and record["endpoint"] == "/chat"
        assert record["ip_address"] == "127.0.0.1" and record["user_agent"] == "compat-client/1.0"
        assert record["state"] == "connected" and record["message_count"] == 1
        assert datetime.fromisoformat(record["connected_at"]).utcoffset() == timedelta(0)
        assert record["bytes_received"] > 0 and record["session_id"] is not None
        assert reply["session"] == {"username": "Alice", "ip": "127.0.0.1"}
        assert reply["session_connections"] == 1
        await client.close()


async def test_readme_reconnection_example_with_one_argument_on_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's reconnect loop: the server refuses two handshakes, the third gets through."""
    async with running(refuse_first=2) as (addr, _):
        tracker = ReconnectionTracker()
        opened: list[ClientConnection] = []

        async def connect_callback() -> bool:
            try:
                opened.append(await open_client(addr, "/chat/bob"))
            except InvalidStatus as refused:
                tracker.record_attempt("bob", False, refused)
                raise
            tracker.record_attempt("bob", True)
            return True

        config = ReconnectionConfig(initial_delay=0.01, max_delay=0.05, max_attempts=5)
        reconnection_manager = ReconnectionManager(config)
        success = await reconnection_manager.reconnect(
            connect_callback,
            on_success=lambda: print("Reconnected successfully"),
            on_failure=lambda attempt: print(f"Attempt {attempt} failed"),
            on_max_attempts=lambda: print("Max attempts reached"),
        )
        assert success is True
        printed = capsys.readouterr().out.splitlines()
        assert printed == ["Attempt 1 failed", "Attempt 2 failed", "Reconnected successfully"]
        stats = tracker.get_connection_stats("bob")
        assert stats is not None and (stats["failed_attempts"], stats["successful_attempts"]) == (
            2,
            1,
        )
        assert "403" in (tracker.get_last_error("bob") or "")
        await opened[0].close()


async def test_heartbeat_callbacks_as_the_readme_shows_them() -> None:
    """ping/cleanup/miss callbacks taking the connection id only, against a silent client."""
    async with running() as (addr, state):
        manager: WebSocketConnectionManager = state["manager"]
        client = await open_client(addr, "/chat/carol")
        await client.send(json.dumps({"type": "whoami"}))  # answered: the connection is registered
        assert (await recv_json(client))["type"] == "whoami"
        (connection,) = manager.connections()
        missed: list[str] = []
        cleaned: list[str] = []

        async def ping(connection_id: str) -> None:
            await manager.send_message(connection_id, {"type": "ping"})

        async def cleanup(connection_id: str) -> None:
            cleaned.append(connection_id)
            await manager.disconnect(connection_id, code=4100, reason="heartbeat timeout")

        monitor = HeartbeatMonitor(HeartbeatConfig(interval=1, timeout=10, max_missed=2))
        await monitor.start(
            ping_callback=ping, cleanup_callback=cleanup, miss_callback=missed.append
        )
        await monitor.stop()  # the passes are run by hand below: no waiting on the interval
        monitor.register_connection(connection.connection_id)
        for _ in range(3):  # the client never answers the pings
            await monitor.check_once()
        assert missed == [connection.connection_id]
        assert cleaned == [connection.connection_id]
        assert await recv_json(client) == {"type": "ping"}
        assert monitor.get_stats()["callback_errors"] == 0
        with pytest.raises(ConnectionClosed):  # the second ping, then the 4100 close
            while True:
                await asyncio.wait_for(client.recv(), TIMEOUT)
        assert client.close_code == 4100
