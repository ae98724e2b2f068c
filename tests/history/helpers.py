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
