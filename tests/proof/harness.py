"""The pieces of the proof tests: real `netrun-ws run` nodes, many Python clients each keeping a
:class:`~tests.proof.ledger.Ledger`, and publishers numbering the messages of every room.

Everything the clients receive is read in the test process (asyncio); the servers are
subprocesses, so killing one is a real SIGKILL of a real node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from netrun_ws.client import Client, State, StateChange
from tests.proof.ledger import GapSeen, Ledger, Tick
from tests.support.cli_server import RunningServer

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "proof-test-api-key-0123456789"


def write_config(
    tmp_path: Path,
    *,
    redis: bool,
    history: dict[str, Any],
    initial_delay: float = 0.2,
) -> Path:
    """A node config: the chat plugin (join/leave) and the pump plugin, no rate limit, no
    heartbeat, a fast reconnect policy with no attempt limit, the publish API."""
    store = (
        "{plugin: redis, url: '${REDIS_URL}', node_ttl: 2.0, node_heartbeat: 0.5, "
        "probe_interval: 0.5, probe_timeout: 3.0}"
        if redis
        else "{plugin: memory}"
    )
    config = tmp_path / "netrun_ws.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            server: {{api_key: "{API_KEY}", drain_timeout: 5, log_level: warning}}
            limits: {{messages_per_second: 0, send_queue: 2048, max_connections_per_ip: 1000}}
            history: {json.dumps(history)}
            store: {store}
            heartbeat: null
            reconnect: {{plugin: exponential, initial_delay: {initial_delay}, max_delay: 1.0,
                        max_attempts: 0}}
            metrics: []
            plugins_dir: {ROOT / "plugins"}
            plugins: [chat, tests.proof.pump_plugin]
            """
        )
    )
    return config


def ws_url(node: RunningServer) -> str:
    return f"ws://{node.addr}/ws"


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until true; fail naming ``what`` after a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:g}s")
        await asyncio.sleep(0.05)


class Listener:
    """One Python client in a few rooms; records ticks and gaps in its ledger, rejoins its
    rooms when a reconnect did not resume its session (the server forgot it)."""

    def __init__(self, urls: Sequence[str], user: str, rooms: Sequence[str]) -> None:
        self.user = user
        self.rooms = list(rooms)
        self.client = Client(
            list(urls), params={"user_id": user}, max_queue=0, on_state=self._on_state
        )
        self.ends: list[int | None] = []  # the close code (or HTTP status) of each reconnect
        self.ledger = Ledger()
        self.welcomes: list[bool] = []  # resumed, per welcome
        self.replayed = 0
        self.joined: set[str] = set()
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _on_state(self, change: StateChange) -> None:
        if change.state is State.RECONNECTING:
            self.ends.append(change.code)

    async def start(self) -> None:
        await self.client.start()
        self._reader = asyncio.create_task(self._read())
        for room in self.rooms:
            await self.client.send({"type": "join", "room": room})
        await until(lambda: self.joined >= set(self.rooms), 30, "rooms joined")

    async def close(self) -> None:
        await self.client.close()
        if self._reader is not None:
            await self._reader
        for task in list(self._tasks):
            await task

    def _rejoin(self) -> None:
        self.joined.clear()
        for room in self.rooms:
            task = asyncio.create_task(self.client.send({"type": "join", "room": room}))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _read(self) -> None:
        async for message in self.client:
            assert isinstance(message, dict)
            kind = message.get("type")
            if kind == "tick":
                pos = message.get("pos") or {}
                self.ledger.entries.append(Tick(message["room"], message["n"], pos.get("epoch")))
            elif kind == "gap":
                room = str(message["channel"]).removeprefix("room:")
                self.ledger.entries.append(GapSeen(room, str(message["reason"])))
            elif kind == "joined":
                self.joined.add(message["room"])
            elif kind == "recovered":
                self.replayed += sum(c.get("replayed", 0) for c in message["channels"].values())
            elif kind == "connect":
                self.welcomes.append(message.get("resumed") is True)
                if len(self.welcomes) > 1 and not self.welcomes[-1]:
                    self._rejoin()

    def has_reached(self, last: dict[str, int]) -> bool:
        return all(self.ledger.last(room) >= last[room] for room in self.rooms)

    def ticks_in_every_room(self) -> int:
        return min(len(self.ledger.ticks(room)) for room in self.rooms)


@contextlib.asynccontextmanager
async def audience(
    count: int, rooms: Sequence[str], urls_of: Callable[[int], Sequence[str]]
) -> AsyncIterator[list[Listener]]:
    """``count`` listeners, the i-th connected through ``urls_of(i)`` and in two of ``rooms``."""
    listeners = [
        Listener(urls_of(i), f"u{i}", [rooms[i % len(rooms)], rooms[(i + 7) % len(rooms)]])
        for i in range(count)
    ]
    try:
        for batch in range(0, count, 20):  # a handshake storm is not what is tested here
            await asyncio.gather(*(x.start() for x in listeners[batch : batch + 20]))
        yield listeners
    finally:
        await asyncio.gather(*(x.close() for x in listeners), return_exceptions=True)


class Pump:
    """Feeds ``rooms`` round-robin through one WebSocket connection at ``rate`` messages per
    second in total (pump plugin), numbering each room's messages 1, 2, ...; the node it talks to
    is never killed. ``finish()`` stops, waits until the node has published all, returns the last
    number of every room."""

    def __init__(self, node: RunningServer, rooms: Sequence[str], rate: float) -> None:
        self.rooms = list(rooms)
        self.last = dict.fromkeys(self.rooms, 0)
        self.sent = 0
        self.elapsed = 0.0
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(node, rate))

    @property
    def rate(self) -> float:
        """Messages per second actually sent (the node takes them as fast: TCP backpressure)."""
        return self.sent / self.elapsed if self.elapsed else 0.0

    async def _run(self, node: RunningServer, rate: float) -> None:
        async with connect(f"{ws_url(node)}?user_id=pump") as ws:
            welcome = json.loads(await ws.recv())
            assert welcome["type"] == "connect", welcome
            started = time.monotonic()
            while not self._stop.is_set():
                due = int(rate * (time.monotonic() - started)) - self.sent
                for _ in range(max(due, 0)):
                    await self._pump(ws, self.rooms[self.sent % len(self.rooms)])
                await asyncio.sleep(0.005)
            self.elapsed = time.monotonic() - started
            await self._pump(ws, self.rooms[0], ack=True)
            while True:  # the answer means every earlier pump was published
                answer = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if answer.get("type") == "pumped":
                    return

    async def _pump(self, ws: ClientConnection, room: str, ack: bool = False) -> None:
        self.last[room] += 1
        self.sent += 1
        await ws.send(json.dumps({"type": "pump", "room": room, "n": self.last[room], "ack": ack}))

    async def finish(self) -> dict[str, int]:
        self._stop.set()
        await self._task
        return dict(self.last)


class HttpPublisher:
    """Publishes to ``rooms`` round-robin through a node's publish API, one request at a time,
    until stopped; rides out the node's restart. A request refused before it was sent is
    retried; one whose answer was lost may or may not have published and is ``uncertain``."""

    def __init__(self, node: RunningServer, rooms: Sequence[str]) -> None:
        self.rooms = list(rooms)
        self.last = dict.fromkeys(self.rooms, 0)
        self.uncertain: dict[str, set[int]] = {room: set() for room in self.rooms}
        self.refused = 0
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(node))

    async def _run(self, node: RunningServer) -> None:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        turn = 0
        async with httpx.AsyncClient(base_url=f"http://{node.addr}", headers=headers) as http:
            while not self._stop.is_set():
                room = self.rooms[turn % len(self.rooms)]
                n = self.last[room] + 1
                body = {"room": room, "data": {"type": "tick", "room": room, "n": n}}
                try:
                    answer = await http.post("/api/publish", json=body, timeout=10)
                except httpx.ConnectError:  # nothing was sent: the node is down
                    self.refused += 1
                    await asyncio.sleep(0.05)
                    continue
                except httpx.TransportError:
                    self.uncertain[room].add(n)
                else:
                    if answer.status_code != 200:
                        self.uncertain[room].add(n)
                self.last[room] = n
                turn += 1
                await asyncio.sleep(0.002)

    async def stop(self) -> dict[str, int]:
        self._stop.set()
        await self._task
        return dict(self.last)
