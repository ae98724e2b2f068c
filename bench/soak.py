"""Soak: >= 1,000 connections churning for a long time, with Redis restarts (issue 15, point 12).

    python bench/soak.py                     # 15 minutes (5 warm-up, 10 measured), 1,000 slots
    python bench/soak.py --duration 60       # a quick validation of the scenario
    python bench/run.py --only soak --soak-duration 900

One ``netrun-ws run`` node (store: redis, the chat plugin) on the server core, its own
redis-server on a free port, and this process as the clients on the other core. Every client
loops: connect, join one of ``--rooms`` rooms, say something in it every few seconds (each
message fans out to the room), sometimes a direct message, then disconnect after a random
lifetime and reconnect as a new connection. So the node sees connects, joins, leaves, messages
and disconnects all the time, at a steady population of ``--connections``. Every
``--redis-restart-every`` seconds redis-server is killed and started again (empty) on the same
port: the node must resubscribe, resync its presence, and refuse connects meanwhile.

Every ``--sample-every`` seconds the server's RSS and open file descriptors (psutil) and its
asyncio task count and connections (``GET /soak/stats``, bench/soak_plugin.py) are sampled. The
slopes are least-squares fits over the samples after the warm-up (``--warmup``, 300 s):
flat means RSS grows by less than 5 % of its mean per 10 minutes, and fds and tasks beyond one
per connection by less than 1 % of the slot count per 10 minutes. Results go to
bench/results/soak.json, and the page docs/reliability.md (figures and an SVG plot) is rewritten
from them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import websockets

ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU, CLIENT_CPU = 0, 1
#: Seconds before the slopes are fitted: the Redis connection pools reach their working size
#: (they open connections under the bursts that follow Redis restarts), and the history windows
#: (``history.*_ttl``: 300 s) fill. The measured window after it is 10 minutes in the
#: published run (900 s in all).
WARMUP = 300.0
RSS_FLAT = 0.05  # of the mean RSS, per 10 minutes
COUNT_FLAT = 0.01  # of the connection count, per 10 minutes

CONFIG = """
server: {{log_level: warning, handshake_timeout: 10}}
limits: {{messages_per_second: 1000, max_connections_per_ip: 100000,
          max_connections_per_user: 1000, max_connections: 100000}}
auth: {{plugin: anonymous}}
store: {{plugin: redis, url: "redis://127.0.0.1:{redis_port}/0", operation_timeout: 2}}
heartbeat: {{plugin: ping, interval: 20, timeout: 60}}
metrics: []
plugins_dir: {plugins}
plugins: [chat, bench.soak_plugin]
"""


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] soak: {text}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} not open after {timeout}s")


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Redis:
    """A private redis-server that can be killed and started again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip  (not pinned: the clients keep their core busy)
        _wait_port(self.port)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()
        self.restarts += 1


@dataclass
class Counters:
    connects: int = 0
    refused: int = 0  # handshakes refused or failed (e.g. 503 while Redis restarts)
    dropped: int = 0  # connections the server closed before the client meant to leave
    sent: int = 0
    received: int = 0
    lifetimes: list[float] = field(default_factory=list)


async def _drain(websocket: Any, counters: Counters) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for _message in websocket:
            counters.received += 1


async def client_loop(
    index: int, port: int, rooms: int, counters: Counters, stop_at: float, rng: random.Random
) -> None:
    """One slot of the population: connect, join, talk, leave, again, until ``stop_at``."""
    generation = 0
    while time.monotonic() < stop_at:
        generation += 1
        user = f"u{index}-{generation}"
        try:
            websocket = await asyncio.wait_for(
                websockets.connect(f"ws://127.0.0.1:{port}/ws?user_id={user}", open_timeout=10),
                15,
            )
        except Exception:
            counters.refused += 1
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            continue
        counters.connects += 1
        reader = asyncio.create_task(_drain(websocket, counters))
        lifetime = rng.uniform(10.0, 40.0)
        leave_at = min(time.monotonic() + lifetime, stop_at)
        room = f"room-{rng.randrange(rooms)}"
        try:
            await websocket.send(json.dumps({"type": "join", "room": room}))
            while time.monotonic() < leave_at:
                await asyncio.sleep(rng.uniform(5.0, 15.0))
                if reader.done():
                    counters.dropped += 1
                    break
                if rng.random() < 0.2:
                    to = f"u{rng.randrange(index + 1)}-1"
                    message = {"type": "direct", "to": to, "text": "hi"}
                else:
                    message = {"type": "say", "room": room, "text": f"m{counters.sent}"}
                await websocket.send(json.dumps(message))
                counters.sent += 1
        except websockets.ConnectionClosed:
            counters.dropped += 1
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(), 5)
            reader.cancel()
            counters.lifetimes.append(lifetime)


def _server_stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/soak/stats", timeout=5) as answer:
        return dict(json.loads(answer.read()))


async def sampler(
    server: psutil.Process,
    port: int,
    counters: Counters,
    redis: Redis,
    every: float,
    stop_at: float,
    started: float,
    samples: list[dict[str, Any]],
) -> None:
    while time.monotonic() < stop_at:
        try:
            stats = await asyncio.to_thread(_server_stats, port)
        except Exception:
            stats = {"tasks": None, "connections": None}
        samples.append(
            {
                "t": round(time.monotonic() - started, 2),
                "rss_mb": round(server.memory_info().rss / 2**20, 2),
                "fds": server.num_fds(),
                "tasks": stats["tasks"],
                "connections": stats["connections"],
                "client_connects": counters.connects,
                "client_refused": counters.refused,
                "redis_restarts": redis.restarts,
            }
        )
        await asyncio.sleep(every)


async def restarter(
    redis: Redis, every: float, stop_at: float, marks: list[float], started: float
) -> None:
    while True:
        await asyncio.sleep(every)
        if time.monotonic() + 5 >= stop_at:
            return
        marks.append(round(time.monotonic() - started, 2))
        await asyncio.to_thread(redis.restart)
        log(f"redis restarted ({redis.restarts})")


async def drive(
    args: argparse.Namespace, port: int, server: psutil.Process, redis: Redis
) -> dict[str, Any]:
    counters = Counters()
    samples: list[dict[str, Any]] = []
    restarts: list[float] = []
    started = time.monotonic()
    stop_at = started + args.duration
    # Ramp up over about 10 s so the first connects do not all land at once.
    ramp = min(10.0, args.duration / 6)

    async def slot(index: int) -> None:
        await asyncio.sleep(ramp * index / args.connections)
        await client_loop(index, port, args.rooms, counters, stop_at, random.Random(index))

    tasks = [asyncio.create_task(slot(index)) for index in range(args.connections)]
    background = [
        asyncio.create_task(
            sampler(server, port, counters, redis, args.sample_every, stop_at, started, samples)
        ),
        asyncio.create_task(restarter(redis, args.redis_restart_every, stop_at, restarts, started)),
    ]
    progress_every = max(10.0, args.duration / 20)
    while time.monotonic() < stop_at:
        await asyncio.sleep(min(progress_every, max(0.0, stop_at - time.monotonic())))
        last = samples[-1] if samples else {}
        log(
            f"t={time.monotonic() - started:.0f}s connections={last.get('connections')} "
            f"rss={last.get('rss_mb')}MB fds={last.get('fds')} tasks={last.get('tasks')} "
            f"connects={counters.connects} refused={counters.refused} sent={counters.sent}"
        )
    await asyncio.wait(tasks, timeout=30)
    for task in [*tasks, *background]:
        task.cancel()
    await asyncio.gather(*tasks, *background, return_exceptions=True)
    return {
        "samples": samples,
        "redis_restart_at": restarts,
        "clients": {
            "connects": counters.connects,
            "refused": counters.refused,
            "dropped": counters.dropped,
            "sent": counters.sent,
            "received": counters.received,
        },
    }


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t seconds, value), per second."""
    if len(points) < 2:
        return float("nan")
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return float("nan")
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var


def analyse(result: dict[str, Any], warmup: float, connections: int) -> dict[str, Any]:
    samples = [s for s in result["samples"] if s["t"] >= warmup]
    figures: dict[str, Any] = {}
    for sample in samples:
        # What a connection does not explain: the leak indicators (the connection count itself
        # moves with the churn and the Redis restarts).
        live = sample["connections"]
        for key in ("fds", "tasks"):
            value = sample[key]
            sample[f"{key}_beyond_connections"] = (
                None if value is None or live is None else value - live
            )
    for key, limit in (
        ("rss_mb", None),
        ("fds", None),
        ("tasks", None),
        ("fds_beyond_connections", COUNT_FLAT * connections),
        ("tasks_beyond_connections", COUNT_FLAT * connections),
    ):
        points = [(s["t"], float(s[key])) for s in samples if s[key] is not None]
        values = [v for _, v in points]
        per_10min = slope(points) * 600
        if key == "rss_mb":
            limit = RSS_FLAT * statistics.fmean(values) if values else float("nan")
        figures[key] = {
            "min": min(values, default=None),
            "max": max(values, default=None),
            "mean": round(statistics.fmean(values), 2) if values else None,
            "slope_per_10min": round(per_10min, 3),
            "flat_limit_per_10min": None if limit is None else round(limit, 3),
            "flat": None if limit is None else abs(per_10min) <= limit,
        }
    return figures


def _svg(result: dict[str, Any], duration: float, warmup: float) -> str:
    """Three small line charts (RSS, fds, tasks) over time, the open connections in grey beside
    the counts; red lines at Redis restarts."""
    width, height, pad, gap = 720, 150, 48, 26
    keys = [
        ("rss_mb", "server RSS (MB)"),
        ("fds", "open file descriptors"),
        ("tasks", "asyncio tasks"),
    ]
    total = len(keys) * (height + gap) + gap
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{total}" fill="white"/>',
    ]
    samples = result["samples"]
    span = max([duration, *(s["t"] for s in samples)])
    for row, (key, title) in enumerate(keys):
        top = gap + row * (height + gap)
        points = [(s["t"], s[key]) for s in samples if s[key] is not None]
        if not points:
            continue
        connections = [(s["t"], s["connections"]) for s in samples if s["connections"] is not None]
        shown = points if key == "rss_mb" else points + connections
        low = min(v for _, v in shown)
        high = max(v for _, v in shown)
        low, high = max(0.0, low - (high - low) * 0.1) - 1e-9, high + (high - low) * 0.1 + 1e-9
        plot_w = width - pad - 10

        def x(t: float, plot_w: float = plot_w) -> float:
            return pad + plot_w * t / max(span, 1e-9)

        def y(v: float, top: float = top, low: float = low, high: float = high) -> float:
            return top + height - height * (v - low) / (high - low)

        out.append(
            f'<text x="{pad}" y="{top - 6}" font-weight="bold">{title}</text>'
            f'<rect x="{pad}" y="{top}" width="{plot_w}" height="{height}" fill="none" '
            f'stroke="#bbb"/>'
            f'<text x="{pad - 4}" y="{top + 10}" text-anchor="end">{int(high)}</text>'
            f'<text x="{pad - 4}" y="{top + height}" text-anchor="end">{int(low)}</text>'
        )
        for mark in result["redis_restart_at"]:
            out.append(
                f'<line x1="{x(mark):.1f}" x2="{x(mark):.1f}" y1="{top}" y2="{top + height}" '
                f'stroke="#d33" stroke-dasharray="3,3"/>'
            )
        warm = x(warmup)
        out.append(
            f'<line x1="{warm:.1f}" x2="{warm:.1f}" y1="{top}" y2="{top + height}" stroke="#999"/>'
        )
        if key != "rss_mb" and connections:  # for scale: what one per connection would be
            line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in connections)
            out.append(f'<polyline points="{line}" fill="none" stroke="#aaa" stroke-width="1"/>')
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="#2a6fdb" stroke-width="1.5"/>')
        out.append(
            f'<text x="{width - 10}" y="{top + height + 14}" text-anchor="end">{span:.0f} s</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def render(report: dict[str, Any]) -> str:
    figures = report["figures"]
    clients = report["clients"]
    rows = "\n".join(
        f"| {name} | {f['min']} | {f['max']} | {f['mean']} | {f['slope_per_10min']:+} | "
        + (
            "(follows the connections) | |"
            if f["flat"] is None
            else f"±{f['flat_limit_per_10min']} | {'flat' if f['flat'] else '**NOT flat**'} |"
        )
        for name, f in (
            ("server RSS (MB)", figures["rss_mb"]),
            ("open file descriptors", figures["fds"]),
            ("asyncio tasks", figures["tasks"]),
            ("fds minus connections", figures["fds_beyond_connections"]),
            ("tasks minus connections", figures["tasks_beyond_connections"]),
        )
    )
    judged = [f["flat"] for f in figures.values() if f["flat"] is not None]
    verdict = "flat" if all(judged) else "NOT flat"
    return f"""# Reliability

What keeps a netrun-ws node steady over time, and the soak run that measures it. Security
limits and refusals are in [security.md](security.md); throughput and latency in
[performance.md](performance.md).

## Soak run

`bench/soak.py` (also `python bench/run.py --only soak --soak-duration SECONDS`): one
`netrun-ws run` node on the Redis store (chat plugin), its own redis-server, and
{report["connections"]:,} client slots that each connect, join one of {report["rooms"]} rooms, say
something every 5-15 s (fanned out to the room; one message in five is a direct message instead),
leave after 10-40 s and reconnect as a new connection. redis-server is killed and restarted
(empty) every {report["redis_restart_every"]:.0f} s. The server's RSS and open file descriptors
(psutil) and its asyncio task count (`GET /soak/stats`, bench/soak_plugin.py) are sampled every
{report["sample_every"]:.0f} s; slopes are least-squares fits after the warm-up (the first
{report["warmup"]:.0f} s: Redis connection pools reach their working size, history windows
fill). The open fds and tasks follow the connection count, which
moves with the churn and dips at each Redis restart, so what is judged is what the connections
do not explain: fds minus connections and tasks minus connections. Flat means RSS grows by less
than {RSS_FLAT:.0%} of its mean, and those two by less than {COUNT_FLAT:.0%} of the slot count,
per 10 minutes.

**This run**: {report["duration"]:.0f} s ({report["finished_at"]}), {clients["connects"]:,}
connections opened, {clients["refused"]:,} refused or failed handshakes (the node refuses
a connect with 503 when the store cannot count it, as while Redis restarts), {clients["dropped"]:,}
closed by the server before the client left, {clients["sent"]:,} messages sent and
{clients["received"]:,} received, {report["redis_restarts"]} Redis restarts. Verdict:
**{verdict}**.

| measure | min | max | mean | slope per 10 min | flat within | |
|---|---|---|---|---|---|---|
{rows}

![RSS, file descriptors and asyncio tasks over the soak run (thin grey: open connections);
dashed red lines are Redis restarts, the vertical grey line the end of the
warm-up](reliability-soak.svg)

The raw samples are in `bench/results/soak.json`. {report.get("note", "")}

## What else holds a node steady

- Shutdown of the Redis store is bounded whatever Redis does (down, frozen, killed meanwhile):
  see docs/deployment.md, "shutdown".
- Revocations last until the credentials expire, on every node: docs/security.md, "Revocation".
- The frame and message parsers are fuzzed against a live server under both websocket
  protocols (tests/security/test_fuzz_frames.py, tests/security/test_bad_input.py).
"""


def run(
    duration: float = 900.0,
    warmup: float = WARMUP,
    connections: int = 1000,
    rooms: int = 100,
    redis_restart_every: float = 120.0,
    sample_every: float = 5.0,
    out: Path = ROOT / "docs/reliability.md",
    note: str = "",
) -> dict[str, Any]:
    _raise_fd_limit()
    os.sched_setaffinity(0, {CLIENT_CPU})
    args = argparse.Namespace(
        duration=duration,
        connections=connections,
        rooms=rooms,
        redis_restart_every=redis_restart_every,
        sample_every=sample_every,
    )
    workdir = Path(tempfile.mkdtemp(prefix="netrun-soak-"))
    redis = Redis(workdir)
    node: subprocess.Popen[bytes] | None = None
    try:
        redis.start()
        config = workdir / "netrun_ws.yaml"
        config.write_text(CONFIG.format(redis_port=redis.port, plugins=ROOT / "plugins"))
        port = _free_port()
        with (workdir / "node.log").open("wb") as node_log:
            node = subprocess.Popen(
                [sys.executable, "-m", "netrun_ws", "run", "--config", str(config),
                 "--port", str(port)],
                stdout=node_log, stderr=node_log, cwd=workdir,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                preexec_fn=lambda: (_raise_fd_limit(), os.sched_setaffinity(0, {SERVER_CPU})),
            )  # fmt: skip
        _wait_port(port)
        log(f"node on {port}, redis on {redis.port}: {connections} slots for {duration:.0f}s")
        result = asyncio.run(drive(args, port, psutil.Process(node.pid), redis))
    finally:
        if node is not None:
            node.terminate()
            try:
                node.wait(15)
            except subprocess.TimeoutExpired:
                node.kill()
        redis.kill()
        tail = (
            (workdir / "node.log").read_text(errors="replace")[-3000:] if workdir.exists() else ""
        )
        shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "duration": duration,
        "warmup": warmup,
        "connections": connections,
        "rooms": rooms,
        "redis_restart_every": redis_restart_every,
        "sample_every": sample_every,
        "redis_restarts": len(result["redis_restart_at"]),
        "finished_at": time.strftime("%Y-%m-%d %H:%M"),
        "note": note,
        **result,
        "figures": analyse(result, warmup, connections),
        "node_log_tail": tail,
    }
    (ROOT / "bench/results").mkdir(exist_ok=True)
    (ROOT / "bench/results/soak.json").write_text(json.dumps(report, indent=1))
    out.write_text(render(report))
    (out.parent / "reliability-soak.svg").write_text(_svg(result, duration, warmup))
    log(f"figures: {json.dumps(report['figures'])}; wrote {out}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=900.0, help="seconds (default 900)")
    parser.add_argument(
        "--warmup", type=float, default=WARMUP, help=f"seconds not fitted (default {WARMUP:.0f})"
    )
    parser.add_argument("--connections", type=int, default=1000, help="client slots (1000)")
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--redis-restart-every", type=float, default=120.0, help="seconds")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds")
    parser.add_argument("--out", default=str(ROOT / "docs/reliability.md"))
    parser.add_argument("--note", default="", help="a sentence added under the figures")
    args = parser.parse_args()
    run(
        args.duration,
        args.warmup,
        args.connections,
        args.rooms,
        args.redis_restart_every,
        args.sample_every,
        Path(args.out),
        args.note,
    )


if __name__ == "__main__":
    main()
