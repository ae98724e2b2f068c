"""Scenario 5: two netrun-ws nodes sharing a private redis-server.

``python bench/crossnode.py`` prints one JSON result; ``bench/run.py`` runs it as the
``crossnode`` scenario and reports it in docs/performance.md.

- Latency: a sender on node A sends ``{"type": "direct", "to": "bob", ...}`` (the chat plugin's
  ``host.send_to_user``) at a fixed rate to a receiver on node B; the same run with both on node A
  is the single-node baseline. One process holds both clients, so send and receive times share a
  clock.
- Fan-out across nodes: receivers split evenly over A and B join one room; a publisher on A says
  messages in it (one PUBLISH each); deliveries/s and delivery latency on each node.

Both nodes run on the server core; the clients (websockets, asyncio) and Redis on the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import websockets

ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU, CLIENT_CPU = 0, 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} not open after {timeout}s")


CONFIG = """
server: {{log_level: warning}}
limits: {{messages_per_second: 1000000, max_connections_per_ip: 100000,
          max_connections_per_user: 1000}}
auth: {{plugin: anonymous}}
store: {{plugin: redis, url: "redis://127.0.0.1:{redis_port}/0"}}
heartbeat: {{plugin: ping, interval: 30, timeout: 90}}
metrics: [{{plugin: prometheus}}]
plugins_dir: {plugins}
plugins: [chat]
"""


@contextlib.contextmanager
def cluster(workdir: Path) -> Iterator[tuple[int, int]]:
    """A private redis-server and two `netrun-ws run` nodes; yields the two ports."""
    with cluster_nodes(workdir, CONFIG) as nodes:
        yield nodes[0][0], nodes[1][0]


@contextlib.contextmanager
def cluster_nodes(
    workdir: Path, config_template: str
) -> Iterator[list[tuple[int, subprocess.Popen[bytes]]]]:
    """A private redis-server and two `netrun-ws run` nodes with ``config_template`` (formatted
    with ``redis_port`` and ``plugins``); yields each node's port and process."""
    redis_port = _free_port()
    processes: list[subprocess.Popen[bytes]] = []
    log = (workdir / "nodes.log").open("wb")
    try:
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=log, stderr=log,
            preexec_fn=lambda: os.sched_setaffinity(0, {CLIENT_CPU}),
        )  # fmt: skip
        processes.append(redis)
        _wait_port(redis_port, redis)
        config = workdir / "netrun_ws.yaml"
        config.write_text(config_template.format(redis_port=redis_port, plugins=ROOT / "plugins"))
        nodes = []
        for _ in range(2):
            port = _free_port()
            node = subprocess.Popen(
                [sys.executable, "-m", "netrun_ws", "run", "--config", str(config),
                 "--port", str(port)],
                stdout=log, stderr=log, cwd=workdir,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CPU}),
            )  # fmt: skip
            processes.append(node)
            _wait_port(port, node)
            nodes.append((port, node))
        time.sleep(1.0)  # both nodes subscribed and probing
        yield nodes
    finally:
        for process in reversed(processes):
            if process.poll() is None:  # a node the scenario killed is gone already
                process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


async def _client(port: int, user: str) -> Any:
    websocket = await websockets.connect(f"ws://127.0.0.1:{port}/ws?user_id={user}")
    welcome = json.loads(await websocket.recv())
    assert welcome["type"] == "connect", welcome
    return websocket


async def _close(websocket: Any) -> None:
    """Close a client promptly. A client that has unread messages (the sender gets a reply to
    each message it sends) stops reading once its queue is full and would wait out its close
    timeout (10 s) for the server's close frame; reading meanwhile lets the close complete."""

    async def drain() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for _message in websocket:
                pass

    reader = asyncio.create_task(drain())
    await websocket.close()
    await reader


def _percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "count": 0}
    ordered = sorted(samples)
    return {
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "count": len(ordered),
    }


async def latency(
    sender_port: int, receiver_port: int, rate: float, seconds: float
) -> dict[str, Any]:
    """send_to_user at a fixed rate; latency from send to receipt, in ms."""
    tag = f"{sender_port}-{receiver_port}-{time.monotonic_ns()}"
    sender = await _client(sender_port, f"sender-{tag}")
    receiver = await _client(receiver_port, f"bob-{tag}")
    samples: list[float] = []
    total = int(rate * seconds)

    async def receive() -> None:
        while len(samples) < total:
            message = json.loads(await receiver.recv())
            if message.get("type") == "direct":
                samples.append((time.perf_counter_ns() - int(message["text"])) / 1e6)

    receiving = asyncio.create_task(receive())
    start = time.perf_counter()
    for index in range(total):
        await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
        await sender.send(
            json.dumps({"type": "direct", "to": f"bob-{tag}", "text": str(time.perf_counter_ns())})
        )
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(receiving, 5)
    receiving.cancel()
    await asyncio.gather(_close(sender), _close(receiver))
    return {"rate": rate, "sent": total, "lost": total - len(samples), **_percentiles(samples)}


async def fanout(port_a: int, port_b: int, receivers: int, messages: int) -> dict[str, Any]:
    """A publisher on A says `messages` times in a room whose members are split over A and B."""
    room = f"bench-{time.monotonic_ns()}"
    members = []
    for index in range(receivers):
        websocket = await _client(port_a if index % 2 == 0 else port_b, f"r{index}-{room}")
        await websocket.send(json.dumps({"type": "join", "room": room}))
        members.append(websocket)
    for websocket in members:
        while json.loads(await websocket.recv()).get("type") != "joined":
            pass
    publisher = await _client(port_a, f"publisher-{room}")
    await publisher.send(json.dumps({"type": "join", "room": room}))
    samples_by_node: dict[str, list[float]] = {"A": [], "B": []}

    async def drain(index: int, websocket: Any) -> None:
        node = "A" if index % 2 == 0 else "B"
        seen = 0
        while seen < messages:
            message = json.loads(await websocket.recv())
            if message.get("type") == "said" and message.get("user_id", "").startswith("publisher"):
                samples_by_node[node].append((time.perf_counter_ns() - int(message["text"])) / 1e6)
                seen += 1

    readers = [asyncio.create_task(drain(i, ws)) for i, ws in enumerate(members)]
    start = time.perf_counter()
    for _ in range(messages):
        payload = {"type": "say", "room": room, "text": str(time.perf_counter_ns())}
        await publisher.send(json.dumps(payload))
        await asyncio.sleep(0.002)  # a steady stream, not one burst
    _, pending = await asyncio.wait(readers, timeout=30)
    elapsed = time.perf_counter() - start
    for task in pending:
        task.cancel()
    delivered = sum(len(samples) for samples in samples_by_node.values())
    await asyncio.gather(*(_close(websocket) for websocket in [*members, publisher]))
    return {
        "receivers": receivers,
        "messages": messages,
        "delivered": delivered,
        "expected": receivers * messages,
        "deliveries_per_s": delivered / elapsed,
        "node_a": _percentiles(samples_by_node["A"]),
        "node_b": _percentiles(samples_by_node["B"]),
    }


async def scenario(quick: bool) -> dict[str, Any]:
    rate, seconds = (500.0, 2.0) if quick else (1000.0, 5.0)
    receivers, messages = (50, 50) if quick else (200, 200)
    with tempfile.TemporaryDirectory() as tmp, cluster(Path(tmp)) as (port_a, port_b):
        await latency(port_a, port_b, rate, 0.5)  # warm-up
        return {
            "cross_node": await latency(port_a, port_b, rate, seconds),
            "same_node": await latency(port_a, port_a, rate, seconds),
            "fanout": await fanout(port_a, port_b, receivers, messages),
        }


def run(quick: bool = False) -> dict[str, Any]:
    os.sched_setaffinity(0, {CLIENT_CPU})
    return asyncio.run(scenario(quick))


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=1))
