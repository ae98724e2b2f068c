"""netrun-websocket's README usage of WebSocketConnectionManager, written as a user would.

The same endpoints run inside a FastAPI app (``@app.websocket``) and a plain Starlette app
(``WebSocketRoute``), served by a real uvicorn and driven by real ``websockets`` clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from netrun_ws.connection_manager import WebSocketConnectionManager
from tests.support.server import serve

TIMEOUT = 5.0


def fastapi_app(manager: WebSocketConnectionManager) -> FastAPI:
    app = FastAPI()

    @app.websocket("/ws/{user_id}")
    async def websocket_endpoint(websocket: WebSocket, user_id: str) -> None:
        connection_id = await manager.connect(websocket, user_id)
        try:
            while True:
                data = await manager.receive_message(connection_id)
                if data is None:
                    break
                await manager.broadcast({"type": "message", "data": data}, exclude_users={user_id})
        finally:
            await manager.disconnect(connection_id)

    @app.websocket("/echo/{user_id}")
    async def echo_endpoint(websocket: WebSocket, user_id: str) -> None:
        connection_id = await manager.connect(websocket, user_id)
        try:
            while True:
                data = await manager.receive_message(connection_id)
                if data is None:
                    break
                await manager.send_to_user(user_id, {"echo": data})
        finally:
            await manager.disconnect(connection_id)

    @app.websocket("/session/{user_id}")
    async def session_endpoint(websocket: WebSocket, user_id: str) -> None:
        # Stands in for `await session_manager.create_connection(...)`, which returns an id.
        connection_id = uuid.uuid4().hex
        await manager.connect(websocket, user_id, session_id=connection_id)
        try:
            while True:
                data = await manager.receive_message(connection_id)
                if data is None:
                    break
                await manager.send_message(connection_id, {"echo": data})
        finally:
            await manager.disconnect(connection_id)

    return app


def starlette_app(manager: WebSocketConnectionManager) -> Starlette:
    async def websocket_endpoint(websocket: WebSocket) -> None:
        user_id = websocket.path_params["user_id"]
        connection_id = await manager.connect(websocket, user_id)
        try:
            while True:
                data = await manager.receive_message(connection_id)
                if data is None:
                    break
                await manager.broadcast({"type": "message", "data": data}, exclude_users={user_id})
        finally:
            await manager.disconnect(connection_id)

    async def echo_endpoint(websocket: WebSocket) -> None:
        user_id = websocket.path_params["user_id"]
        connection_id = await manager.connect(websocket, user_id)
        try:
            while True:
                data = await manager.receive_message(connection_id)
                if data is None:
                    break
                await manager.send_to_user(user_id, {"echo": data})
        finally:
            await manager.disconnect(connection_id)

    async def session_endpoint(websocket: WebSocket) -> None:
        user_id = websocket.path_params["user_id"]
        connection_id = uuid.uuid4().hex  # a session manager's connection id
        await manager.connect(websocket, user_id, session_id=connection_id)
        try:
            while True:
                data = await manager.receive_message(connection_id)
                if data is None:
                    break
                await manager.send_message(connection_id, {"echo": data})
        finally:
            await manager.disconnect(connection_id)

    return Starlette(
        routes=[
            WebSocketRoute("/ws/{user_id}", websocket_endpoint),
            WebSocketRoute("/echo/{user_id}", echo_endpoint),
            WebSocketRoute("/session/{user_id}", session_endpoint),
        ]
    )


AppFactory = Callable[[WebSocketConnectionManager], Any]
frameworks = pytest.mark.parametrize(
    "make_app", [fastapi_app, starlette_app], ids=["fastapi", "starlette"]
)


@contextlib.asynccontextmanager
async def running(make_app: AppFactory) -> AsyncIterator[tuple[WebSocketConnectionManager, str]]:
    manager = WebSocketConnectionManager(max_connections_per_user=5)
    async with serve(make_app(manager)) as addr:
        try:
            yield manager, addr
        finally:
            await manager.close_all()


async def open_client(addr: str, path: str) -> ClientConnection:
    return await connect(f"ws://{addr}{path}", open_timeout=TIMEOUT)


async def recv_json(client: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(client.recv(), TIMEOUT))


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@frameworks
async def test_broadcast_excluding_the_sender(make_app: AppFactory) -> None:
    async with running(make_app) as (manager, addr):
        alice, bob, carol = [await open_client(addr, f"/ws/{u}") for u in ("alice", "bob", "carol")]
        await wait_until(lambda: len(manager) == 3, "3 connections")

        await alice.send(json.dumps({"text": "hi from alice"}))
        expected = {"type": "message", "data": {"text": "hi from alice"}}
        assert await recv_json(bob) == expected
        assert await recv_json(carol) == expected

        await bob.send(json.dumps({"text": "hi from bob"}))
        # Alice's first frame is bob's: her own broadcast never came back to her.
        assert await recv_json(alice) == {"type": "message", "data": {"text": "hi from bob"}}
        assert await recv_json(carol) == {"type": "message", "data": {"text": "hi from bob"}}

        for client in (alice, bob, carol):
            await client.close()
        await wait_until(lambda: manager.get_stats()["total_connections"] == 0, "all gone")
        assert manager.get_stats()["total_users"] == 0


@frameworks
async def test_send_to_user_reaches_every_tab_of_that_user_only(make_app: AppFactory) -> None:
    async with running(make_app) as (manager, addr):
        tab1 = await open_client(addr, "/echo/alice")
        tab2 = await open_client(addr, "/echo/alice")
        bob = await open_client(addr, "/echo/bob")
        await wait_until(lambda: len(manager) == 3, "3 connections")

        await tab1.send(json.dumps({"n": 1}))
        assert await recv_json(tab1) == {"echo": {"n": 1}}
        assert await recv_json(tab2) == {"echo": {"n": 1}}
        await bob.send(json.dumps({"n": 2}))
        assert await recv_json(bob) == {"echo": {"n": 2}}  # not alice's echo

        for client in (tab1, tab2, bob):
            await client.close()
        await wait_until(lambda: len(manager) == 0, "all gone")


@frameworks
async def test_session_manager_id_used_as_the_address(make_app: AppFactory) -> None:
    async with running(make_app) as (manager, addr):
        client = await open_client(addr, "/session/alice")
        await wait_until(lambda: len(manager) == 1, "connection")
        (connection,) = manager.connections()
        session_id = connection.session_id
        assert session_id is not None and re.fullmatch(r"[0-9a-f]{32}", session_id)
        assert session_id != connection.connection_id
        assert manager.get_connection(session_id) is connection

        for n in range(3):
            await client.send(json.dumps({"n": n}))
            assert await recv_json(client) == {"echo": {"n": n}}
        info = manager.get_connection_info(session_id)
        assert info is not None and info["messages_received"] == 3

        await client.close()
        await wait_until(lambda: len(manager) == 0, "connection gone")
        assert manager.get_connection(session_id) is None
        assert manager._by_session == {}


@frameworks
async def test_per_user_limit_refuses_the_sixth_tab(make_app: AppFactory) -> None:
    async with running(make_app) as (manager, addr):
        tabs = [await open_client(addr, "/echo/alice") for _ in range(5)]
        with pytest.raises(InvalidStatus) as refused:
            await open_client(addr, "/echo/alice")
        assert refused.value.response.status_code == 403
        await wait_until(lambda: len(manager) == 5, "5 connections")
        for tab in tabs:
            await tab.close()
