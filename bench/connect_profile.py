"""Where a netrun-ws connection's set-up time goes (scenario 3 profiled).

``run.py`` starts this module as the server twice (``python bench/connect_profile.py --port P
--out F [--profile]``): the same netrun-ws app and websocket protocol as ``servers.py netrun``,
with the garbage collector's pauses timed through ``gc.callbacks``. SIGUSR2 starts measuring once
the load generator has warmed up; it opens the scenario's connections; SIGUSR1 stops measuring
(before any teardown) and writes ``F.json`` (GC pauses, CPU seconds) and, with ``--profile``,
``F.prof``. :func:`summarise` splits the profiled time into the stages of a connection. cProfile
slows Python code down several times, so from the profiled run only the shares are used; CPU per
connection and GC pauses come from the run without the profiler.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: (label, function) whose cumulative time is a stage; ``minus`` entries are subtracted.
STAGES: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "uvicorn: HTTP parsing, the upgrade, the 101 response",
        "httptools_impl.py:data_received",
        (),
    ),
    ("auth: PyJWT decode and verify (HS256)", "jwt/api_jwt.py:decode", ()),
    (
        "auth: the rest of admission (origin, handshake/authenticate hooks, timeout)",
        "netrun_ws/runtime/admission.py:admit",
        ("jwt/api_jwt.py:decode",),
    ),
    (
        "open: limits, session store, connection manager, accept",
        "netrun_ws/runtime/admission.py:open",
        (),
    ),
    ("on_connect hooks (metrics, heartbeat)", "netrun_ws/plugins/relay.py:on_connect", ()),
    ("welcome: welcome_payload hooks, encode, send", "netrun_ws/runtime/admission.py:welcome", ()),
]


def serve(port: int, out: str, profile: bool) -> None:
    os.sched_setaffinity(0, {0})
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    from bench.servers import UVICORN_SETTINGS, netrun_config
    from netrun_ws.app import load_app_config
    from netrun_ws.cli import build_server

    collections = [0, 0, 0]
    # GC pause seconds, when the GC pause began, CPU time when measuring began.
    clock = {"seconds": 0.0, "started": 0.0, "cpu_start": 0.0}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            clock["started"] = time.perf_counter()
        else:
            clock["seconds"] += time.perf_counter() - clock["started"]
            collections[info["generation"]] += 1

    profiler = cProfile.Profile()

    def begin(*_: object) -> None:
        gc.callbacks.append(on_gc)
        clock["cpu_start"] = time.process_time()
        if profile:
            profiler.enable()

    def finish(*_: object) -> None:
        if profile:
            profiler.disable()
            profiler.dump_stats(f"{out}.prof")
        gc.callbacks.remove(on_gc)
        measured = {
            "seconds": clock["seconds"],
            "collections": collections,
            "cpu_seconds": time.process_time() - clock["cpu_start"],
        }
        Path(f"{out}.json").write_text(json.dumps(measured))

    signal.signal(signal.SIGUSR2, begin)
    signal.signal(signal.SIGUSR1, finish)
    # Built as servers.py builds netrun-ws (as `netrun-ws run` does), deflate off.
    build_server(load_app_config(netrun_config(False)), port=port, **UVICORN_SETTINGS).run()


def _cumulative(stats: pstats.Stats, wanted: str) -> float:
    """Cumulative seconds of the function ``file:name``."""
    total = 0.0
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    file_part, _, name = wanted.rpartition(":")
    for (filename, _line, function), (_cc, _nc, _tt, cumulative, _callers) in table.items():
        if function == name and filename.endswith(file_part):
            total += cumulative
    return total


def summarise(profiled_out: str, measured_out: str, connections: int) -> dict[str, Any]:
    """Stage shares from the profiled run; CPU and GC pauses from the unprofiled one."""
    stats = pstats.Stats(f"{profiled_out}.prof")
    profiled = sum(entry[2] for entry in stats.stats.values())  # type: ignore[attr-defined]
    gc_info = json.loads(Path(f"{measured_out}.json").read_text())
    stages = []
    for label, function, minus in STAGES:
        seconds = _cumulative(stats, function) - sum(_cumulative(stats, m) for m in minus)
        stages.append({"stage": label, "share": seconds / profiled if profiled else 0.0})
    return {
        "connections": connections,
        "stages": stages,
        "gc_seconds": gc_info["seconds"],
        "gc_collections": gc_info["collections"],
        "cpu_seconds": gc_info["cpu_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--profile", action="store_true", help="cProfile (else: CPU and GC only)")
    args = parser.parse_args()
    serve(args.port, args.out, args.profile)


if __name__ == "__main__":
    main()
