"""Helpers for host tests: config dicts, clients that read JSON with a deadline."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection

RECORDING = "tests.host.recording_plugin"


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


async def recv_json(client: ClientConnection, timeout: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(client.recv(), timeout))


async def recv_until(client: ClientConnection, type_: str, timeout: float = 5.0) -> dict[str, Any]:
    """Skip messages (e.g. pings) until one of ``type_`` arrives."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await client.recv())
            if message.get("type") == type_:
                return dict(message)


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    """Poll ``predicate()`` until true (server-side effects after a client closes)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - server-side state has no event to await
            await asyncio.sleep(0.01)
