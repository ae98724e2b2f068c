"""Helpers for client tests: served apps, tokens, a recorder of the client's events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from netrun_ws import create_app
from netrun_ws.auth import JWTAuthService
from netrun_ws.client import Client, Gap, Message, State, StateChange
from tests.host.helpers import base_config
from tests.support.server import serve

SECRET = "client-test-secret-0123456789abcdef0123"
JWT = {"plugin": "jwt", "secret": SECRET}
#: A reconnect policy fast enough for tests (the welcome carries it to the client).
FAST_RECONNECT: dict[str, Any] = {
    "plugin": "exponential",
    "initial_delay": 0.05,
    "max_delay": 0.2,
    "max_attempts": 40,
}


#: ``{"type": "burst", "count": N}`` is answered with N ``{"type": "item", "n": i}`` messages; how
#: many the server wrote is counted in ``host.state["burst_sent"]``.
BURST = """\
from typing import Literal

from pydantic import BaseModel

from netrun_ws import hookimpl


class Burst(BaseModel):
    type: Literal["burst"]
    count: int


@hookimpl
def configure(host):
    host.state["burst_sent"] = 0


@hookimpl
def register_message_types():
    return [Burst]


@hookimpl
async def on_message(host, connection, message):
    if isinstance(message, Burst):
        for n in range(message.count):
            if await host.send(connection, {"type": "item", "n": n}):
                host.state["burst_sent"] += 1
"""


def token(user: str, seconds: float = 300) -> str:
    return JWTAuthService(SECRET).generate_token(user, expiry_seconds=seconds)


def chat_config(**overrides: Any) -> dict[str, Any]:
    """The example chat plugin, the fast reconnect policy, anonymous auth, memory store."""
    config = base_config(
        plugins_dir="plugins",
        plugins=["chat"],
        reconnect=FAST_RECONNECT,
        limits={"messages_per_second": 0},
    )
    config.update(overrides)
    return config


@asynccontextmanager
async def served(config: dict[str, Any], port: int = 0) -> AsyncIterator[tuple[Any, str]]:
    """A fresh app for ``config`` served on ``port`` (0: a free one): ``(app, "host:port")``."""
    app = create_app(config)
    async with serve(app, port=port) as addr:
        yield app, addr


class Recorder:
    """Collects what a client reports through its callbacks."""

    def __init__(self) -> None:
        self.states: list[StateChange] = []
        self.gaps: list[Gap] = []
        self._changed = asyncio.Event()

    def on_state(self, change: StateChange) -> None:
        self.states.append(change)
        self._changed.set()

    def on_gap(self, gap: Gap) -> None:
        self.gaps.append(gap)
        self._changed.set()

    def kinds(self) -> list[State]:
        return [change.state for change in self.states]

    async def wait_state(self, state: State, count: int = 1, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while self.kinds().count(state) < count:
                self._changed.clear()
                await self._changed.wait()


def client_for(addr: str, recorder: Recorder | None = None, **options: Any) -> Client:
    if recorder is not None:
        options.setdefault("on_state", recorder.on_state)
        options.setdefault("on_gap", recorder.on_gap)
    return Client(f"ws://{addr}/ws", **options)


async def next_of(client: Client, type_: str, timeout: float = 5.0) -> Message:
    """Skip messages until one of ``type_`` (a dict's ``type`` or a model's) arrives."""
    async with asyncio.timeout(timeout):
        while True:
            message = await client.recv()
            kind = (
                message.get("type") if isinstance(message, dict) else getattr(message, "type", None)
            )
            if kind == type_:
                return message
