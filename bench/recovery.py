"""Scenario 6: recovery after a node is killed.

``python bench/recovery.py [--quick]`` prints one JSON result; ``bench/run.py`` runs it as the
``recovery`` scenario and reports it in docs/performance.md.

Two `netrun-ws run` nodes (Redis store, chat plugin, history on with its defaults) share a private
redis-server. Python clients (``netrun_ws.client``, all in this process, each knowing both nodes'
URLs) are split over the nodes, each in one of a few rooms; a publisher on node B says numbered
messages in every room at a fixed total rate. Node A is killed with SIGKILL mid-stream: its
clients reconnect to B, resume their sessions and recover what they missed. Reported: the time
from the kill until every moved client had its ``recovered`` message (the reconnect policy's
first delay is part of it), what was replayed, and per client every number missing, doubled or
out of order at the end (lost must be 0).

Both nodes run on the server core; Redis and the clients on the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.crossnode import CLIENT_CPU, cluster_nodes  # noqa: E402
from netrun_ws.client import Client  # noqa: E402

#: The reconnect policy the welcome gives the clients: first attempt after 0.1-0.2 s.
INITIAL_DELAY = 0.2
# Formatted by cluster_nodes (redis_port, plugins): braces of the YAML are doubled.
CONFIG = """
server: {{log_level: warning}}
limits: {{messages_per_second: 0, max_connections_per_ip: 100000,
          max_connections_per_user: 1000}}
auth: {{plugin: anonymous}}
store: {{plugin: redis, url: "redis://127.0.0.1:{redis_port}/0", node_ttl: 3.0,
         node_heartbeat: 1.0}}
heartbeat: null
reconnect: {{plugin: exponential, initial_delay: INITIAL_DELAY, max_delay: 2.0,
             max_attempts: 0}}
metrics: []
plugins_dir: {plugins}
plugins: [chat]
""".replace("INITIAL_DELAY", str(INITIAL_DELAY))


class Receiver:
    """One client in one room: the numbers it got, in order, and when it recovered."""

    def __init__(self, urls: list[str], user: str, room: str) -> None:
        self.room = room
        self.client = Client(urls, params={"user_id": user}, max_queue=0)
        self.numbers: list[int] = []
        self.gaps = 0
        self.replayed = 0
        self.recovered_at: float | None = None
        self.joined = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.start()
        self.reader = asyncio.create_task(self._read())
        await self.client.send({"type": "join", "room": self.room})
        await asyncio.wait_for(self.joined.wait(), 30)

    async def _read(self) -> None:
        async for message in self.client:
            assert isinstance(message, dict)
            kind = message.get("type")
            if kind == "said" and message.get("user_id") == "publisher":
                self.numbers.append(int(message["text"]))
            elif kind == "joined":
                self.joined.set()
            elif kind == "gap":
                self.gaps += 1
            elif kind == "recovered":
                self.recovered_at = time.monotonic()
                self.replayed += sum(c["replayed"] for c in message["channels"].values())

    def faults(self, last: int) -> tuple[int, int]:
        """(numbers 1..last never received, numbers received twice or out of order)."""
        wrong = sum(1 for a, b in zip(self.numbers, self.numbers[1:], strict=False) if b <= a)
        return last - len(set(self.numbers) & set(range(1, last + 1))), wrong

    async def close(self) -> None:
        await self.client.close()
        if self.reader is not None:
            await self.reader


async def _close(websocket: Any) -> None:
    """Close a client promptly. A client that has unread messages stops reading once its queue
    is full and would wait out its close timeout (10 s) for the server's close frame; reading
    meanwhile lets the close complete."""

    async def drain() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for _message in websocket:
                pass

    reader = asyncio.create_task(drain())
    await websocket.close()
    await reader


async def publish(port: int, rooms: list[str], rate: float, stop: asyncio.Event) -> list[float]:
    """Say 1, 2, ... in every room in turn at ``rate`` in total until ``stop``; returns
    [messages sent per room, seconds]."""
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws?user_id=publisher")
    json.loads(await ws.recv())
    for room in rooms:
        await ws.send(json.dumps({"type": "join", "room": room}))

    async def drain() -> None:  # it is a member of every room: read what it gets
        with contextlib.suppress(websockets.ConnectionClosed):
            async for _message in ws:
                pass

    reader = asyncio.create_task(drain())
    sent, started = 0, time.monotonic()
    while not stop.is_set():
        due = int(rate * (time.monotonic() - started)) // len(rooms)
        while sent < due:
            sent += 1
            for room in rooms:
                await ws.send(json.dumps({"type": "say", "room": room, "text": str(sent)}))
        await asyncio.sleep(0.005)
    elapsed = time.monotonic() - started
    reader.cancel()
    await _close(ws)
    return [float(sent), elapsed]


async def until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def scenario(quick: bool) -> dict[str, Any]:
    count, rate, rooms = (100, 500.0, 5) if quick else (200, 1000.0, 10)
    room_names = [f"feed{k}" for k in range(rooms)]
    with (
        tempfile.TemporaryDirectory() as tmp,
        cluster_nodes(Path(tmp), CONFIG) as (nodes, _redis_port),
    ):
        (port_a, node_a), (port_b, _) = nodes
        url_a, url_b = f"ws://127.0.0.1:{port_a}/ws", f"ws://127.0.0.1:{port_b}/ws"
        receivers = [
            Receiver(
                [url_a, url_b] if i % 2 == 0 else [url_b, url_a], f"c{i}", room_names[i % rooms]
            )
            for i in range(count)
        ]
        for batch in range(0, count, 25):
            await asyncio.gather(*(r.start() for r in receivers[batch : batch + 25]))
        stop = asyncio.Event()
        publisher = asyncio.create_task(publish(port_b, room_names, rate, stop))
        await asyncio.sleep(2.0)
        killed = time.monotonic()
        node_a.send_signal(signal.SIGKILL)
        node_a.wait()
        moved = receivers[0::2]
        all_back = await until(lambda: all(r.recovered_at is not None for r in moved), 60)
        await asyncio.sleep(2.0)
        stop.set()
        sent, elapsed = await publisher
        last = int(sent)
        await until(lambda: all(last in r.numbers for r in receivers), 30)
        times = sorted((r.recovered_at or float("inf")) - killed for r in moved)
        faults = [r.faults(last) for r in receivers]
        await asyncio.gather(*(r.close() for r in receivers))
    return {
        "clients": count,
        "moved": len(moved),
        "rooms": rooms,
        "rate": rate,
        "achieved_rate": sent * rooms / elapsed,
        "messages": last * rooms,
        "initial_delay": INITIAL_DELAY,
        "all_recovered": all_back,
        "recovered_p50_s": statistics.median(times),
        "recovered_max_s": times[-1],
        "replayed": sum(r.replayed for r in moved),
        "lost": sum(lost for lost, _ in faults),
        "duplicates_or_disorder": sum(wrong for _, wrong in faults),
        "gaps": sum(r.gaps for r in receivers),
    }


def run(quick: bool = False) -> dict[str, Any]:
    os.sched_setaffinity(0, {CLIENT_CPU})
    return asyncio.run(scenario(quick))


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=1))
