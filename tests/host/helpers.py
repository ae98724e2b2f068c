"""Helpers for host tests: config dicts, clients that read JSON with a deadline, the echo app."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

RECORDING = "tests.host.recording_plugin"
ECHO = "tests.host.echo_plugin"


def base_config(**overrides: Any) -> dict[str, Any]:
    """A config dict for create_app: anonymous auth, memory store, no metrics, no heartbeat."""
    config: dict[str, Any] = {
        "server": {"path": "/ws"},
        "auth": {"plugin": "anonymous"},
        "store": {"plugin": "memory"},
        "heartbeat": None,
        "metrics": [],
        "plugins_dir": None,
        "plugins": [],
    }
    config.update(overrides)
    return config


def without_pos(message: Any) -> Any:
    """``message`` without its history position (tests/history checks those)."""
    if isinstance(message, dict):
        message.pop("pos", None)
    return message


async def recv_json(client: ClientConnection, timeout: float = 5.0) -> Any:
    """The next message, without its history ``pos``."""
    return without_pos(json.loads(await asyncio.wait_for(client.recv(), timeout)))


async def recv_until(client: ClientConnection, type_: str, timeout: float = 5.0) -> dict[str, Any]:
    """Skip messages (e.g. pings) until one of ``type_`` arrives (returned without ``pos``)."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await client.recv())
            if message.get("type") == type_:
                return dict(without_pos(message))


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    """Poll ``predicate()`` until true (server-side effects after a client closes)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - server-side state has no event to await
            await asyncio.sleep(0.01)


def echo_config(ws_protocol: str = "netrun", **limits: Any) -> dict[str, Any]:
    """The echo app (tests/host/echo_plugin.py) served with ``ws_protocol``, no rate limit."""
    return base_config(
        server={"path": "/ws", "ws_protocol": ws_protocol},
        limits={"messages_per_second": 0, **limits},
        plugins=[ECHO],
    )


async def echo_burst(addr: str, count: int, text: str) -> list[dict[str, Any]]:
    """Send ``count`` echoes without waiting, then read ``count`` replies."""
    async with connect(f"ws://{addr}/ws?user_id=u", max_size=None) as client:
        assert (await recv_json(client))["type"] == "connect"
        for seq in range(count):
            await client.send(json.dumps({"type": "echo", "seq": seq, "text": text}))
        return [await recv_json(client) for _ in range(count)]


def only_connection(app: Any) -> Any:
    """The one connection ``app``'s host has."""
    (connection,) = app.state.host.manager.connections()
    return connection
