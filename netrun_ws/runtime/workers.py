"""``netrun-ws run --workers N``: N server processes on one port, each a node of the cluster.

Each worker is a whole ``netrun-ws run`` server in its own spawned process (its own Host, plugins
and store connection, so the store is what makes them one cluster, as it does across machines).
Every worker binds the port itself with ``SO_REUSEPORT``, so the kernel spreads new connections
over the workers that are listening (a dead worker's share goes to the others until it is back);
the supervisor only holds a bound, non-listening socket to reserve the port and fail early when it
is taken. Workers run in their own process group: the supervisor alone gets the terminal's
Ctrl+C and forwards each SIGINT/SIGTERM it gets to every worker once, so each worker drains
exactly as a single server does (and a second Ctrl+C forces, as it does there). A worker that dies
while the supervisor is not stopping is started again (one log line); one that exits with a
configuration, plugin or start-up error code stops them all, with that code.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.context import SpawnProcess
from types import FrameType
from typing import Any

__all__ = ["Supervisor", "WorkerSpec", "configure_logging", "memory_store_refusal", "worker_count"]

logger = logging.getLogger("netrun_ws")

#: Exit codes of a worker that would fail the same way again (cli.EXIT_CONFIG/PLUGIN/START).
_FATAL_EXITS = frozenset({2, 3, 4})
#: A worker that dies sooner than this after its start is restarted only after this long.
_RESTART_BACKOFF = 1.0
#: Seconds past ``drain_timeout`` the supervisor waits for its workers before it kills them.
_STOP_MARGIN = 10.0


def configure_logging(log_level: str, *, worker: bool = False) -> None:
    """Root logging as ``netrun-ws run`` sets it (``trace`` is level 5); a worker's lines say
    which process wrote them."""
    level = logging.getLevelName(log_level.upper()) if log_level != "trace" else 5
    source = "%(name)s[%(process)d]" if worker else "%(name)s"
    logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)s {source}: %(message)s")


def worker_count(setting: int | str) -> int:
    """``server.workers`` as a number: ``auto`` is the machine's cores."""
    if setting == "auto":
        return os.cpu_count() or 1
    return int(setting)


def memory_store_refusal(store_plugin: str, workers: int) -> str | None:
    """Why ``workers`` processes cannot share the configured store, or None."""
    if workers > 1 and store_plugin == "memory":
        return (
            f"error: server.workers is {workers} but store.plugin is 'memory', which each worker "
            "would keep to itself (users, rooms and limits split between them); use the redis "
            "store (store: {plugin: redis, url: ...}) or one worker"
        )
    return None


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to load the same config as ``netrun-ws run`` did (picklable)."""

    config: str
    env: str | None
    overrides: Mapping[str, Any] | None
    host: str
    port: int
    log_level: str
    drain_timeout: float


def _reuseport_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _exit_with_parent(parent: int) -> None:
    """A worker whose supervisor is gone (killed with SIGKILL) drains and exits by itself."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def _serve_worker(spec: WorkerSpec, parent: int) -> None:
    """A worker process: ``netrun-ws run``'s server on its own ``SO_REUSEPORT`` socket."""
    os.setpgrp()  # terminal signals go to the supervisor, which forwards them once
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    from netrun_ws.cli import serve_loaded

    configure_logging(spec.log_level, worker=True)
    sys.exit(serve_loaded(spec.config, spec.env, spec.overrides, _reuseport_socket))


@dataclass
class _Worker:
    slot: int
    process: SpawnProcess
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Starts ``count`` workers, restarts the ones that die, and stops them all on a signal."""

    def __init__(self, spec: WorkerSpec, count: int) -> None:
        self._spec = spec
        self._count = count
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, _Worker] = {}
        self._signals: list[int] = []
        self._stopping_since: float | None = None

    def run(self) -> int:
        """Serve until a signal stops every worker; returns the exit code."""
        spec = self._spec
        try:  # the port is free for SO_REUSEPORT listeners, or fail now, once
            reservation = _reuseport_socket(spec.host, spec.port)
        except OSError as error:
            print(f"error: cannot bind {spec.host}:{spec.port}: {error}", file=sys.stderr)
            return 4
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            logger.info("starting %d workers on %s:%d", self._count, spec.host, spec.port)
            for slot in range(self._count):
                self._start(slot)
            return self._supervise()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            reservation.close()

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._signals.append(sig)

    def _start(self, slot: int) -> None:
        process = self._context.Process(
            target=_serve_worker, args=(self._spec, os.getpid()), name=f"netrun-ws worker {slot}"
        )
        process.start()
        self._workers[slot] = _Worker(slot, process)

    def _stop_all(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to every worker: the first signal drains, a second SIGINT forces."""
        if self._stopping_since is None:
            self._stopping_since = time.monotonic()
        for worker in self._workers.values():
            if worker.process.pid is not None and worker.process.exitcode is None:
                os.kill(worker.process.pid, sig)

    def _supervise(self) -> int:
        code = 0
        while self._workers:
            sentinels = [worker.process.sentinel for worker in self._workers.values()]
            wait(sentinels, timeout=0.2)
            while self._signals:
                self._stop_all(self._signals.pop(0))
            for worker in [w for w in self._workers.values() if w.process.exitcode is not None]:
                del self._workers[worker.slot]
                exitcode = worker.process.exitcode
                assert exitcode is not None
                if self._stopping_since is not None:
                    code = code or (exitcode if exitcode > 0 else 0)
                elif exitcode in _FATAL_EXITS:
                    # Broken config, plugin or port: every restart would fail the same way.
                    code = exitcode
                    self._stop_all()
                else:
                    self._restart(worker, exitcode)
            if self._stopping_since is not None and self._overdue():
                for worker in self._workers.values():
                    worker.process.kill()
        return code

    def _restart(self, worker: _Worker, exitcode: int) -> None:
        cause = f"signal {signal.Signals(-exitcode).name}" if exitcode < 0 else f"code {exitcode}"
        logger.error(
            "worker %d (pid %s) died (%s); restarting it", worker.slot, worker.process.pid, cause
        )
        if time.monotonic() - worker.started < _RESTART_BACKOFF:
            time.sleep(_RESTART_BACKOFF)  # a worker that dies at once must not spin
        self._start(worker.slot)

    def _overdue(self) -> bool:
        assert self._stopping_since is not None
        limit = self._spec.drain_timeout * 2 + _STOP_MARGIN  # host drain, then uvicorn's own
        return time.monotonic() - self._stopping_since > limit
