"""Helpers for history tests: a chat app with the publish API, clients that resume with `since`."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.host.helpers import base_config

KEY = "history-test-api-key-0123"
AUTH = {"Authorization": f"Bearer {KEY}"}


def chat_config(**history: Any) -> dict[str, Any]:
    """Memory store, anonymous auth (``?user_id=``), the chat plugin, the publish API."""
    return base_config(
        server={"path": "/ws", "api_key": KEY},
        limits={"messages_per_second": 0},
        history=history,
        plugins=["chat"],
        plugins_dir="plugins",
    )


def since_query(positions: dict[str, Any]) -> str:
    return urllib.parse.quote(json.dumps(positions))


async def open_client(
    addr: str, user: str, session_id: str | None = None, since: dict[str, Any] | None = None
) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect (resuming when ``session_id`` is given); return the socket and its welcome."""
    query = f"user_id={user}"
    if session_id is not None:
        query += f"&session_id={session_id}"
    if since is not None:
        query += f"&since={since_query(since)}"
    websocket = await connect(f"ws://{addr}/ws?{query}")
    welcome = json.loads(await asyncio.wait_for(websocket.recv(), 5))
    assert welcome["type"] == "connect", welcome
    return websocket, welcome


async def next_message(websocket: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(websocket.recv(), timeout))
    assert isinstance(message, dict)
    return message


async def close_reading(
    websocket: ClientConnection, into: list[dict[str, Any]], timeout: float = 5.0
) -> None:
    """Close ``websocket`` as a client that keeps reading does, keeping what arrives meanwhile in
    ``into`` (the client got it, so a resume must not repeat it); assert the server answered.

    A bare ``close()`` behind a backlog hangs: websockets stops reading the socket once
    ``max_queue`` (16) frames wait unread, so the server's close reply, queued behind the
    backlog, is never read and the close waits out its whole ``close_timeout`` (10 s).
    """
    closing = asyncio.create_task(websocket.close())
    try:
        async with asyncio.timeout(timeout):
            async for raw in websocket:  # ends once the server's close frame is read
                into.append(json.loads(raw))
            await closing
    finally:
        closing.cancel()  # only if the timeout struck
    assert websocket.close_code == 1000, (websocket.close_code, websocket.close_reason)


async def read_until(
    websocket: ClientConnection, type_: str, timeout: float = 5.0
) -> list[dict[str, Any]]:
    """Every message up to and including the first of ``type_``."""
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await websocket.recv())
            found.append(message)
            if message.get("type") == type_:
                return found


def last_positions(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What a client remembers: the last ``pos`` per channel."""
    positions: dict[str, dict[str, Any]] = {}
    for message in messages:
        pos = message.get("pos")
        if pos is not None:
            positions[pos["channel"]] = {"offset": pos["offset"], "epoch": pos["epoch"]}
    return positions
