"""Scenario 5: two netrun-ws nodes sharing a private redis-server.

``python bench/crossnode.py`` prints one JSON result; ``bench/run.py`` runs it as the
``crossnode`` scenario and reports it in docs/performance.md.

- Fan-out across nodes: bench/loadgen.py's fan-out mode with N = 1,000 receivers split evenly
  over A and B and the publisher on A (the bench plugin's ``publish``: ``host.broadcast``, one
  PUBLISH per message); the same with all receivers on A is the single-node baseline of the same
  run (same nodes, same Redis store). Windows alternate, the ratio is of the medians.
- Latency: loadgen's latency mode: 10 senders on A send ``{"type": "direct", ...}`` (the chat
  plugin's ``host.send_to_user``) to 10 receivers on B, 5,000 msg/s in all; the same with the
  receivers on A is the baseline without Redis; then one sender alone at the same rate. One
  process holds both ends, so send and receive times share a clock.

Both nodes run on the server core; the load generator (picows on uvloop) and Redis on the other.
Then the cross-node latency again with node B on the other core (``cross_node_split``): two
nodes sharing a core wait for each other's scheduler slices, which separate machines do not.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
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

ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU, CLIENT_CPU = 0, 1
#: Fan-out receivers, split evenly over the two nodes in the cross-node windows.
RECEIVERS = 1000


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


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A private ``redis-server`` (no persistence) for an in-process workload; yields its URL."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as workdir:
        redis = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_port(port, redis)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            redis.terminate()
            redis.wait(10)


CONFIG = """
server: {{log_level: warning}}
limits: {{messages_per_second: 1000000, max_connections_per_ip: 100000,
          max_connections_per_user: 1000, max_pending_requests: 100000,
          max_pending_requests_per_ip: 100000}}
auth: {{plugin: anonymous}}
store: {{plugin: redis, url: "redis://127.0.0.1:{redis_port}/0"}}
heartbeat: {{plugin: ping, interval: 30, timeout: 90}}
metrics: [{{plugin: prometheus}}]
plugins_dir: {plugins}
plugins: [chat, bench.echo_plugin]
"""


#: Where the two nodes run: both on the server core (the default), or node B on the other core.
ONE_CORE = (SERVER_CPU, SERVER_CPU)
SPLIT = (SERVER_CPU, CLIENT_CPU)


@contextlib.contextmanager
def cluster(workdir: Path, cpus: tuple[int, int] = ONE_CORE) -> Iterator[tuple[int, int, int]]:
    """A private redis-server and two `netrun-ws run` nodes; yields their ports and Redis's."""
    with cluster_nodes(workdir, CONFIG, cpus) as (nodes, redis_port):
        yield nodes[0][0], nodes[1][0], redis_port


@contextlib.contextmanager
def cluster_nodes(
    workdir: Path, config_template: str, cpus: tuple[int, int] = ONE_CORE
) -> Iterator[tuple[list[tuple[int, subprocess.Popen[bytes]]], int]]:
    """A private redis-server and two `netrun-ws run` nodes with ``config_template`` (formatted
    with ``redis_port`` and ``plugins``), node i pinned to core ``cpus[i]``; yields each node's
    port and process, and Redis's port."""
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
        for cpu in cpus:
            port = _free_port()
            node = subprocess.Popen(
                [sys.executable, "-m", "netrun_ws", "run", "--config", str(config),
                 "--port", str(port)],
                stdout=log, stderr=log, cwd=workdir,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                preexec_fn=functools.partial(os.sched_setaffinity, 0, {cpu}),
            )  # fmt: skip
            processes.append(node)
            _wait_port(port, node)
            nodes.append((port, node))
        time.sleep(1.0)  # both nodes subscribed and probing
        yield nodes, redis_port
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


def _loadgen(args: list[str]) -> dict[str, Any]:
    """Run bench/loadgen.py on the client core; its last JSON line."""
    command = [sys.executable, str(ROOT / "bench/loadgen.py"), *args, "--cpu", str(CLIENT_CPU)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen {args[0]} failed: {done.stderr[-2000:]}")
    record: dict[str, Any] = json.loads(lines[-1])
    return record


def fanout(
    port_a: int, receiver_ports: list[int], receivers: int, warmup: float, duration: float
) -> dict[str, Any]:
    """loadgen's fan-out mode: the publisher on A, ``receivers`` round-robin over the ports."""
    urls = ",".join(f"ws://127.0.0.1:{port}/ws" for port in receiver_ports)
    args = ["fanout", "--url", f"ws://127.0.0.1:{port_a}/ws", "--receiver-urls", urls]
    args += ["--proto", "netrun", "--phases", str(receivers)]
    args += ["--warmup", str(warmup), "--duration", str(duration)]
    return _loadgen(args)


def latency(
    sender_port: int, receiver_port: int, rate: float, senders: int, duration: float
) -> dict[str, Any]:
    """loadgen's latency mode: send_to_user from ``senders`` on one node to receivers on
    another (or the same), ``rate`` messages/s in all."""
    args = ["latency", "--url", f"ws://127.0.0.1:{sender_port}/ws"]
    args += ["--receiver-urls", f"ws://127.0.0.1:{receiver_port}/ws", "--proto", "netrun"]
    args += ["--rate", str(rate), "--conns", str(senders)]
    args += ["--warmup", "0.5", "--duration", str(duration)]
    return _loadgen(args)


def _redis(redis_port: int, *command: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-p", str(redis_port), *command], capture_output=True, text=True, check=True
    )
    return done.stdout


def _redis_used_memory(redis_port: int) -> int:
    info = _redis(redis_port, "INFO", "memory")
    return int(next(line for line in info.splitlines() if line.startswith("used_memory:"))[12:])


#: Not the connections' work: our own queries, the probes' PUBLISHes, and EXEC (the commands of
#: a MULTI are counted once each already).
_NOT_CONNECTION_WORK = ("info", "config|resetstat", "exec", "publish")


def _redis_command_usec(redis_port: int) -> float:
    """Redis's CPU time in commands since the last CONFIG RESETSTAT (INFO commandstats), us."""
    total = 0.0
    for line in _redis(redis_port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, _, fields = line.removeprefix("cmdstat_").partition(":")
            values = dict(field.split("=") for field in fields.split(","))
            total += 0.0 if name in _NOT_CONNECTION_WORK else float(values["usec"])
    return total


def redis_memory(port: int, redis_port: int, connections: int) -> dict[str, Any]:
    """Redis's ``used_memory`` per connection: with ``connections`` idle connections open on one
    node (distinct users, no rooms), then after they closed (their sessions are kept); and the
    Redis CPU time (commandstats) one connection's open and close cost."""
    command = [sys.executable, str(ROOT / "bench/loadgen.py"), "connect", "--proto", "netrun"]
    command += ["--url", f"ws://127.0.0.1:{port}/ws", "--conns", str(connections)]
    command += ["--inflight", "100", "--cpu", str(CLIENT_CPU)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    generator = subprocess.Popen(
        command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert generator.stdin is not None and generator.stdout is not None

    def tell(word: str) -> dict[str, Any]:
        assert generator.stdin is not None and generator.stdout is not None
        generator.stdin.write(f"{word}\n")
        generator.stdin.flush()
        record: dict[str, Any] = json.loads(generator.stdout.readline())
        return record

    json.loads(generator.stdout.readline())  # warm
    _redis(redis_port, "CONFIG", "RESETSTAT")
    before = _redis_used_memory(redis_port)
    opened = tell("go")["connections"]
    time.sleep(2.0)
    during = _redis_used_memory(redis_port)
    tell("close")
    generator.wait(60)
    time.sleep(2.0)  # the nodes saw the closes and saved the sessions
    after = _redis_used_memory(redis_port)
    usec = _redis_command_usec(redis_port)
    return {
        "redis_usec_per_connection": usec / opened,
        "connections": opened,
        "bytes_per_open_connection": (during - before) / opened,
        "bytes_per_closed_connection": (after - before) / opened,
    }


def scenario(quick: bool) -> dict[str, Any]:
    reps, duration = (1, 2.0) if quick else (3, 4.0)
    rate, senders = 5000.0, 10
    result: dict[str, Any] = {"fanout_single": [], "fanout_cross": []}
    with tempfile.TemporaryDirectory() as tmp, cluster(Path(tmp)) as (port_a, port_b, redis_port):
        latency(port_a, port_b, 1000.0, senders, 1.0)  # warm-up: imports, Redis pools
        time.sleep(1.0)
        for rep in range(reps):
            # Single-node and cross-node windows alternate (order rotated), so a drift of the
            # machine's speed does not read as a cross-node cost.
            order = [("fanout_single", [port_a]), ("fanout_cross", [port_a, port_b])]
            for key, ports in order[rep % 2 :] + order[: rep % 2]:
                record = fanout(port_a, ports, RECEIVERS, 0.5, duration)
                record["rep"] = rep
                result[key].append(record)
                time.sleep(1.0)  # the previous receivers are gone from both nodes
        # A run that fell behind leaves a backlog in the nodes: let it drain before the next.
        result["cross_node"] = latency(port_a, port_b, rate, senders, duration * reps)
        time.sleep(2.0)
        result["same_node"] = latency(port_a, port_a, rate, senders, duration * reps)
        time.sleep(2.0)
        # One sender at the same rate: each message waits for the previous one's PUBLISH.
        result["cross_node_one_sender"] = latency(port_a, port_b, rate, 1, duration)
        time.sleep(2.0)
        result["redis_memory"] = redis_memory(port_a, redis_port, 2000 if quick else 5000)
    # Two nodes on one core wait for each other's scheduler slices (a few ms each): node B on
    # the other core, as on a machine of its own, measures the cross-node path instead.
    with tempfile.TemporaryDirectory() as tmp, cluster(Path(tmp), SPLIT) as (port_a, port_b, _):
        latency(port_a, port_b, 1000.0, senders, 1.0)
        time.sleep(1.0)
        result["cross_node_split"] = latency(port_a, port_b, rate, senders, duration * reps)
    result["fanout_ratio"] = _ratio(result["fanout_cross"], result["fanout_single"])
    return result


def _ratio(cross: list[dict[str, Any]], single: list[dict[str, Any]]) -> float:
    def median(records: list[dict[str, Any]]) -> float:
        return statistics.median(float(r["deliveries_per_s"]) for r in records)

    return median(cross) / median(single)


def run(quick: bool = False) -> dict[str, Any]:
    os.sched_setaffinity(0, {CLIENT_CPU})
    return scenario(quick)


def latency_only(duration: float, reps: int, split: bool = False) -> dict[str, Any]:
    """Only the latency windows (cross-node, same-node, one sender), each ``duration`` seconds,
    ``reps`` times on the same two nodes (``split``: node B on the other core): for working on
    the cross-node path."""
    os.sched_setaffinity(0, {CLIENT_CPU})
    rate, senders = 5000.0, 10
    result: dict[str, Any] = {"cross_node": [], "same_node": [], "cross_node_one_sender": []}
    cpus = SPLIT if split else ONE_CORE
    with tempfile.TemporaryDirectory() as tmp, cluster(Path(tmp), cpus) as (port_a, port_b, _):
        latency(port_a, port_b, 1000.0, senders, 1.0)  # warm-up: imports, Redis pools
        time.sleep(1.0)
        for _ in range(reps):
            result["cross_node"].append(latency(port_a, port_b, rate, senders, duration))
            time.sleep(2.0)
            result["same_node"].append(latency(port_a, port_a, rate, senders, duration))
            time.sleep(2.0)
        # Last: one sender falls behind by seconds, and the nodes work through its backlog after
        # its window closed; a window after it would measure that backlog.
        for _ in range(reps):
            result["cross_node_one_sender"].append(latency(port_a, port_b, rate, 1, duration))
            time.sleep(2.0)
    for key in list(result):
        result[f"{key}_median_p50_ms"] = statistics.median(r["p50_ms"] for r in result[key])
        result[f"{key}_median_p99_ms"] = statistics.median(r["p99_ms"] for r in result[key])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short window of each kind")
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="only the send_to_user latency windows (no fan-out, no Redis memory)",
    )
    parser.add_argument(
        "--split", action="store_true", help="--latency-only: node B on the load generator's core"
    )
    parser.add_argument("--duration", type=float, default=4.0, help="--latency-only: s/window")
    parser.add_argument("--reps", type=int, default=3, help="--latency-only: windows per kind")
    args = parser.parse_args()
    if args.latency_only:
        print(json.dumps(latency_only(args.duration, args.reps, args.split), indent=1))
    else:
        print(json.dumps(run(args.quick), indent=1))


if __name__ == "__main__":
    main()
