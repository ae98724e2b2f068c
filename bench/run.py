"""Run the benchmark suite of issue 6 and write docs/performance.md.

    python bench/run.py            # full suite, about 25 minutes on a 2-core machine
    python bench/run.py --quick    # smoke run, about 6 minutes, smaller numbers, 1 repetition
    python bench/run.py --only soak --soak-duration 900   # the soak run: docs/reliability.md

Every server runs in its own process pinned to core 0; the picows load generator runs in another
process pinned to core 1. Peers run in the same invocation, interleaved: each repetition visits
every server once, in a rotated order. Results (JSON) go to bench/results/latest.json as well.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.profile_summary import summarise  # noqa: E402

PYTHON = sys.executable
SERVER_CPU, LOADGEN_CPU = 0, 1
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class Plan:
    reps: int
    echo_duration: float
    echo_warmup: float
    fanout_phases: str
    fanout_duration: float
    fanout_prefill: float
    connect_conns: int
    connect_reps: int
    profile_seconds: float


# Fan-out phases: "1000s" adds one stalled receiver; the "1000" window after it (same receivers,
# the stalled one gone) brackets it with the one before, so machine drift is not read as a cost;
# the full run measures two stalled windows per repetition, the noisiest figure of the suite.
FULL = Plan(3, 4.0, 1.0, "100,1000,1000s,1000,1000s,1000,5000", 2.0, 3.0, 5000, 3, 8.0)
QUICK = Plan(1, 2.0, 0.5, "100,1000,1000s,1000", 1.5, 1.5, 1000, 1, 3.0)

#: Node.js peers (bench/node/server.mjs), installed by ``npm ci`` in bench/node at start-up.
NODE_KINDS = ("node_ws", "node_socketio")
ECHO_KINDS = [
    "picows", "netrun", "raw_asgi", "starlette", "websockets", "socketio", "node_ws",
    "node_socketio",
]  # fmt: skip
FANOUT_KINDS = ["picows", "netrun", "websockets", "socketio", "node_ws", "node_socketio"]
#: Scenario 7: the same room fan-out with room history on and off (bench/room_plugin.py).
HISTORY_KINDS = ["netrun_room_history", "netrun_room_nohistory"]
# netrun-ws with 1 and 3 extra plugins handling other types: the cost of each (dispatch by type).
# The same 3 as catch-alls that ignore the echo, as plugins were called before (for comparison).
ECHO_KINDS += ["netrun_plus1", "netrun_plus3", "netrun_plus3_catchall"]
#: Scenario 5: the same fixed load offered to each (server CPU per message): (label, mode,
#: receivers, rate/s). Below what each of these can serve, so every one keeps up.
FIXED_CASES = [("echo", "echo", 0, 30000.0), ("fan-out N=1,000", "fanout", 1000, 50000.0)]
FIXED_KINDS = ["netrun", "node_ws", "picows", "netrun_plus1", "netrun_plus3"]
# (label, server kind, server deflate, client offers deflate)
CONNECT_CASES = [
    ("picows", "picows", "off", False),  # the load generator's ceiling
    ("node_ws", "node_ws", "off", False),  # ws's default: no permessage-deflate
    ("netrun", "netrun", "off", False),
    ("raw_asgi", "raw_asgi", "on", False),
    ("raw_asgi_netrun_protocol", "raw_asgi_netrun_protocol", "on", False),
    ("starlette", "starlette", "on", False),
    ("starlette_jwt", "starlette_jwt", "off", False),
    ("netrun", "netrun", "off", True),
    ("netrun (permessage_deflate: true)", "netrun", "on", True),
    ("raw_asgi", "raw_asgi", "on", True),
    ("starlette", "starlette", "on", True),
]

_ports = iter(range(21000, 29000))


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def url_for(kind: str, port: int) -> tuple[str, str]:
    if kind in ("socketio", "node_socketio"):
        return f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", "socketio"
    # starlette_jwt speaks as netrun-ws does at connect: bearer token in, welcome message out.
    proto = "netrun" if kind.startswith("netrun") or kind == "starlette_jwt" else "plain"
    return f"ws://127.0.0.1:{port}/ws", proto


def default_deflate(kind: str) -> str:
    """netrun-ws runs as its CLI does (deflate off); peers keep uvicorn's default (on)."""
    return "off" if kind.startswith("netrun") else "on"


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout}s")


@contextmanager
def server(kind: str, mode: str, deflate: str) -> Iterator[tuple[int, int]]:
    """Start a server process pinned to SERVER_CPU; yields (port, pid)."""
    port = next(_ports)
    if kind in NODE_KINDS:
        # Pinned by taskset (node has no affinity call); the peers run with their defaults.
        command = ["taskset", "-c", str(SERVER_CPU), "node", str(ROOT / "bench/node/server.mjs")]
        command += [kind.removeprefix("node_"), str(port), mode]
    else:
        command = [PYTHON, str(ROOT / "bench/servers.py"), kind, "--port", str(port)]
        command += ["--mode", mode, "--deflate", deflate, "--cpu", str(SERVER_CPU)]
    with server_process(command, port) as pid:
        yield port, pid


@contextmanager
def server_process(command: list[str], port: int) -> Iterator[int]:
    """Run ``command`` (a server listening on ``port``) until the block ends; yields its pid."""
    stderr = open(ROOT / "bench/results/server.log", "ab")
    process = subprocess.Popen(command, env=ENV, stdout=stderr, stderr=stderr)
    try:
        _wait_port(port, process)
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(2.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stderr.close()


def install_node_peers() -> None:
    """Install bench/node's locked dependencies (ws, socket.io) once: the bench's own set-up."""
    folder = ROOT / "bench/node"
    marker = folder / "node_modules/.package-lock.json"
    lock = folder / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    log("installing the Node.js peers: npm ci in bench/node")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=folder, check=True)


def loadgen(args: list[str]) -> subprocess.Popen[str]:
    command = [PYTHON, str(ROOT / "bench/loadgen.py"), *args, "--cpu", str(LOADGEN_CPU)]
    return subprocess.Popen(
        command, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def read_event(process: subprocess.Popen[str], timeout: float = 180.0) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout)
        raise RuntimeError(f"load generator exited with {process.returncode} without a result")
    record: dict[str, Any] = json.loads(line)
    return record


def rotated(items: list[Any], rep: int) -> list[Any]:
    shift = rep % len(items)
    return items[shift:] + items[:shift]


def run_echo(plan: Plan) -> list[dict[str, Any]]:
    results = []
    for rep in range(plan.reps):
        for kind in rotated(ECHO_KINDS, rep):
            with server(kind, "echo", default_deflate(kind)) as (port, pid):
                url, proto = url_for(kind, port)
                args = ["echo", "--url", url, "--proto", proto, "--conns", "50", "--inflight", "8"]
                args += ["--server-pid", str(pid)]
                args += ["--warmup", str(plan.echo_warmup), "--duration", str(plan.echo_duration)]
                process = loadgen(args)
                record = read_event(process)
                process.wait(30)
            record.update(kind=kind, rep=rep)
            results.append(record)
            log(f"echo {kind:<10} rep {rep}: {record['msgs_per_s']:,.0f} msg/s")
    return results


def run_fanout(plan: Plan) -> list[dict[str, Any]]:
    results = []
    phases = plan.fanout_phases.split(",")
    for rep in range(plan.reps):
        for kind in rotated(FANOUT_KINDS, rep):
            with server(kind, "fanout", default_deflate(kind)) as (port, pid):
                url, proto = url_for(kind, port)
                args = ["fanout", "--url", url, "--proto", proto, "--phases", plan.fanout_phases]
                args += ["--server-pid", str(pid)]
                args += ["--warmup", "0.5", "--duration", str(plan.fanout_duration)]
                args += ["--prefill", str(plan.fanout_prefill), "--prefill-payload-bytes", "16384"]
                process = loadgen(args)
                for _ in phases:
                    record = read_event(process)
                    record.update(kind=kind, rep=rep)
                    results.append(record)
                    log(
                        f"fan-out {kind:<10} rep {rep} N={record['phase']:<6}: "
                        f"{record['deliveries_per_s']:,.0f} deliveries/s, "
                        f"p99 {record['p99_us'] / 1000:.1f} ms"
                    )
                process.wait(30)
    return results


def run_fixed(plan: Plan) -> list[dict[str, Any]]:
    """Each server under the same offered load, interleaved: what the work costs it in CPU."""
    results = []
    for rep in range(plan.reps):
        for label, mode, receivers, rate in FIXED_CASES:
            kinds = FIXED_KINDS if mode == "echo" else FIXED_KINDS[:3]
            for kind in rotated(kinds, rep):
                with server(kind, mode, default_deflate(kind)) as (port, pid):
                    url, proto = url_for(kind, port)
                    args = ["fixed", "--url", url, "--proto", proto, "--server-pid", str(pid)]
                    args += ["--receivers", str(receivers), "--fixed-rate", str(rate)]
                    args += ["--conns", "50", "--warmup", "1"]
                    args += ["--duration", str(plan.echo_duration)]
                    process = loadgen(args)
                    record = read_event(process)
                    process.wait(30)
                record.update(kind=kind, rep=rep, case=label)
                results.append(record)
                log(
                    f"fixed {label} {kind:<12} rep {rep}: {record['server_cpu_us']:.2f} us CPU "
                    f"each, server {record['server_cpu']:.0%} busy, missing {record['missing']}"
                )
    return results


def run_history(plan: Plan) -> list[dict[str, Any]]:
    """Room fan-out with history on and off, interleaved; at least two repetitions, so each
    goes first once."""
    results = []
    for rep in range(max(2, plan.reps)):
        for kind in rotated(HISTORY_KINDS, rep):
            with server(kind, "fanout", "off") as (port, pid):
                url, proto = url_for(kind, port)
                args = ["fanout", "--url", url, "--proto", proto, "--phases", "1000"]
                args += ["--server-pid", str(pid)]
                args += ["--warmup", "0.5", "--duration", str(plan.fanout_duration)]
                args += ["--prefill", "0", "--prefill-payload-bytes", "16384"]
                process = loadgen(args)
                record = read_event(process)
                process.wait(30)
            record.update(kind=kind, rep=rep, measured_at=time.strftime("%Y-%m-%d %H:%M"))
            results.append(record)
            log(
                f"history {kind:<22} rep {rep}: {record['deliveries_per_s']:,.0f} deliveries/s, "
                f"p99 {record['p99_us'] / 1000:.1f} ms"
            )
    return results


def _cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds a process has used so far."""
    times = process.cpu_times()
    return float(times.user + times.system)


def run_connect(plan: Plan) -> list[dict[str, Any]]:
    results = []
    for rep in range(plan.connect_reps):
        # The rate ratios need every repetition; the cases with a client offering deflate are
        # there for scenario 4's memory figures, which vary by well under 1%: run once.
        cases = CONNECT_CASES if rep == 0 else [case for case in CONNECT_CASES if not case[3]]
        for label, kind, deflate, offer in rotated(cases, rep):
            with server(kind, "echo", deflate) as (port, pid):
                url, proto = url_for(kind, port)
                args = ["connect", "--url", url, "--proto", proto, "--inflight", "200"]
                args += ["--conns", str(plan.connect_conns)]
                process = loadgen(args + (["--offer-deflate"] if offer else []))
                assert process.stdin is not None
                read_event(process)  # warm: lazy imports done, warm-up connections closed
                served, generating = psutil.Process(pid), psutil.Process(process.pid)
                rss_before = served.memory_info().rss
                server_cpu, loadgen_cpu = -_cpu_seconds(served), -_cpu_seconds(generating)
                process.stdin.write("go\n")
                process.stdin.flush()
                record = read_event(process)
                server_cpu += _cpu_seconds(served)
                loadgen_cpu += _cpu_seconds(generating)
                time.sleep(2.0)  # let the server settle (welcome sent, buffers released)
                rss_after = served.memory_info().rss
                process.stdin.write("close\n")
                process.stdin.flush()
                done = read_event(process)
                process.wait(60)
            record.update(
                label=label,
                kind=kind,
                server_deflate=deflate,
                client_offers_deflate=offer,
                rep=rep,
                rss_before=rss_before,
                rss_after=rss_after,
                rss_per_conn=(rss_after - rss_before) / plan.connect_conns,
                alive=done["alive"],
                server_cpu_per_conn=server_cpu / record["connections"],
                loadgen_busy=loadgen_cpu / record["elapsed_s"],
            )
            results.append(record)
            log(
                f"connect {label:<34} offer={offer!s:<5} rep {rep}: "
                f"{record['connects_per_s']:,.0f}/s, {record['rss_per_conn'] / 1024:.1f} KB/conn"
            )
    return results


def run_connect_profile(plan: Plan) -> dict[str, Any]:
    """Scenario 3 against netrun-ws twice more (bench/connect_profile.py): CPU and GC pauses
    without a profiler, then the share of each stage of a connection under cProfile."""
    from bench import connect_profile

    outs: dict[bool, str] = {}
    rates: dict[bool, float] = {}
    for profiled in (False, True):
        port = next(_ports)
        out = str(ROOT / f"bench/results/connect_{'profiled' if profiled else 'measured'}")
        command = [PYTHON, str(ROOT / "bench/connect_profile.py"), "--port", str(port)]
        command += ["--out", out] + (["--profile"] if profiled else [])
        with server_process(command, port) as pid:
            url, proto = url_for("netrun", port)
            args = ["connect", "--url", url, "--proto", proto, "--inflight", "200"]
            generator = loadgen([*args, "--conns", str(plan.connect_conns)])
            assert generator.stdin is not None
            read_event(generator)  # warm
            Path(f"{out}.json").unlink(missing_ok=True)
            os.kill(pid, signal.SIGUSR2)
            time.sleep(0.2)
            generator.stdin.write("go\n")
            generator.stdin.flush()
            rates[profiled] = read_event(generator)["connects_per_s"]
            os.kill(pid, signal.SIGUSR1)
            deadline = time.monotonic() + 60
            while not Path(f"{out}.json").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            generator.stdin.write("close\n")
            generator.stdin.flush()
            read_event(generator)
            generator.wait(60)
        outs[profiled] = out
    summary = connect_profile.summarise(outs[True], outs[False], plan.connect_conns)
    summary["connects_per_s"] = rates[False]
    summary["connects_per_s_profiled"] = rates[True]
    log(f"connect profile: {json.dumps(summary)}")
    return summary


def run_profile(plan: Plan) -> dict[str, Any]:
    """py-spy on the netrun-ws server while the echo scenario runs."""
    raw = ROOT / f"bench/results/netrun_echo_pyspy{'_quick' if plan is QUICK else ''}.txt"
    with server("netrun", "echo", "off") as (port, pid):
        url, proto = url_for("netrun", port)
        args = ["echo", "--url", url, "--proto", proto, "--conns", "50", "--inflight", "8"]
        args += ["--warmup", "1", "--duration", str(plan.profile_seconds + 2)]
        process = loadgen(args)
        time.sleep(2.0)
        spy = ["taskset", "-c", str(LOADGEN_CPU), "py-spy", "record", "--pid", str(pid)]
        spy += ["--duration", str(int(plan.profile_seconds)), "--rate", "250", "--nonblocking"]
        spy += ["--format", "raw", "--output", str(raw)]
        subprocess.run(
            spy,
            check=True,
            capture_output=True,
            env={**ENV, "PATH": f"{Path(PYTHON).parent}:{ENV.get('PATH', '')}"},
        )
        record = read_event(process)
        process.wait(30)
    return {"raw": str(raw), "msgs_per_s_while_profiled": record["msgs_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short smoke run (about 6 minutes)")
    parser.add_argument("--out", default=str(ROOT / "docs/performance.md"))
    parser.add_argument(
        "--only",
        default="echo,fanout,fixed,connect,crossnode,recovery,history,instructions,profile",
        help="comma-separated scenarios (also: soak, the long reliability run)",
    )
    parser.add_argument(
        "--soak-duration",
        type=float,
        default=900.0,
        help="seconds of the soak scenario, its first 300 s a warm-up (--only soak; not part of "
        "the default suite)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the report from bench/results/latest.json without running anything",
    )
    args = parser.parse_args()
    if args.render_only:
        saved = json.loads((ROOT / "bench/results/latest.json").read_text())
        write_report(saved, Path(args.out))
        return
    only = set(args.only.split(","))
    if "soak" in only:
        # Its own page (docs/reliability.md) and results file; it does not mix with the suite.
        from bench import soak

        soak.run(duration=args.soak_duration)
        only.discard("soak")
        if not only:
            return
    plan = QUICK if args.quick else FULL
    os.sched_setaffinity(0, {LOADGEN_CPU})
    (ROOT / "bench/results").mkdir(exist_ok=True)
    (ROOT / "bench/results/server.log").write_bytes(b"")
    if only & {"echo", "fanout", "fixed", "connect"}:
        install_node_peers()
    started = time.monotonic()
    results: dict[str, Any] = {"plan": plan.__dict__, "quick": args.quick}
    results["machine"] = report.machine()  # recorded now: --render-only may run elsewhere
    # A scenario that crashes must not take the finished ones with it: they are kept here.
    partial = ROOT / "bench/results" / ("quick.partial.json" if args.quick else "partial.json")

    def keep(name: str, value: Any) -> None:
        results[name] = value
        partial.write_text(json.dumps(results, indent=1))

    if "echo" in only:
        keep("echo", run_echo(plan))
    if "fanout" in only:
        keep("fanout", run_fanout(plan))
    if "fixed" in only:
        keep("fixed", run_fixed(plan))
    if "connect" in only:
        keep("connect", run_connect(plan))
    if "crossnode" in only:
        from bench import crossnode

        keep("crossnode", crossnode.run(quick=args.quick))
        log(f"cross-node: {json.dumps(results['crossnode']['cross_node'])}")
        os.sched_setaffinity(0, {LOADGEN_CPU})
    if "recovery" in only:
        from bench import recovery

        keep(
            "recovery",
            {**recovery.run(quick=args.quick), "measured_at": time.strftime("%Y-%m-%d %H:%M")},
        )
        log(f"recovery: {json.dumps(results['recovery'])}")
        os.sched_setaffinity(0, {LOADGEN_CPU})
    if "history" in only:
        keep("history", run_history(plan))
    if "instructions" in only:
        keep("instructions", run_instructions(args.quick))
    if "profile" in only:
        results["profile"] = run_profile(plan)
        results["connect_profile"] = run_connect_profile(plan)
    results["elapsed_s"] = time.monotonic() - started
    results["finished_at"] = time.strftime("%Y-%m-%d %H:%M")
    # A smoke run never overwrites the full run's raw results.
    name = "quick.json" if args.quick else "latest.json"
    (ROOT / "bench/results" / name).write_text(json.dumps(results, indent=1))
    write_report(results, Path(args.out))
    log(f"done in {results['elapsed_s']:.0f}s; wrote {args.out}")


#: Echo messages per counted run of the instructions scenario (full run, quick run).
INSTRUCTION_MESSAGES = (2000, 500)
#: netrun-ws alone, then with 1 and 3 plugins whose on_message handles another type.
INSTRUCTION_KINDS = ("netrun", "netrun_plus1", "netrun_plus3")


def _callgrind_total(args: list[str]) -> int:
    """Instructions callgrind counts for ``python -m bench.echo_instructions ARGS``."""
    with tempfile.TemporaryDirectory() as tmp:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out"]
        command += [PYTHON, "-m", "bench.echo_instructions", *args]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    match = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"callgrind run failed: {done.stderr[-2000:]}")
    return int(match.group(1))


def run_instructions(quick: bool) -> dict[str, Any]:
    """What an echo message costs netrun-ws in CPU instructions, alone and with extra plugins
    handling other types (``bench/echo_instructions.py`` under callgrind: a run of N messages
    minus an empty run, over N). Counts do not move with the machine's load, so a plugin's few
    percent show where the wall-clock windows move by ten."""
    if shutil.which("valgrind") is None:
        log("instructions: valgrind is not installed; skipped (apt-get install valgrind)")
        return {}
    messages = INSTRUCTION_MESSAGES[1 if quick else 0]
    per_message: dict[str, float] = {}
    for kind in INSTRUCTION_KINDS:
        empty = _callgrind_total(["--messages", "0", "--kind", kind])
        full = _callgrind_total(["--messages", str(messages), "--kind", kind])
        per_message[kind] = (full - empty) / messages
        log(f"instructions {kind:<13}: {per_message[kind]:,.0f} per message")
    return {"messages": messages, "per_message": per_message}


def write_report(results: dict[str, Any], out: Path) -> None:
    saved = results.get("profile")
    profile = None
    if saved is not None:
        profile = {**saved, "profile": summarise(Path(saved["raw"]))}
    out.write_text(report.render(results, profile, results["plan"]))


if __name__ == "__main__":
    main()
