"""A private, real ``redis-server`` for tests: free loopback port, own temp dir, no persistence.

Two ways to get one:

- a private server for one test, which the test may kill, restart, pause and resume::

      from tests.support.redis_server import RedisServer

      async def test_something() -> None:
          async with RedisServer() as server:          # started, answers PING
              client = redis.asyncio.Redis.from_url(server.url)
              await server.restart()                   # same port, empty data set
              server.pause()                           # SIGSTOP: connections hang
              server.resume()                          # SIGCONT

  or the ``redis_server`` fixture (function scope), imported into a conftest.py;

- one server shared by the whole test session (``shared_redis_server()``, or the
  ``shared_redis`` fixture); tests must not stop or pause it, and should isolate their data
  with a unique key prefix.

Servers run with ``--save "" --appendonly no --bind 127.0.0.1`` (a restart loses all data),
and every one still running is stopped at interpreter exit, each within a few seconds. If
``redis-server`` is not on PATH the test is skipped with a loud reason, or FAILS when the ``CI``
environment variable is set (CI must not skip silently).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import TracebackType

import pytest

__all__ = [
    "RedisServer",
    "redis_server",
    "redis_server_binary",
    "shared_redis",
    "shared_redis_server",
]

#: Seconds to wait for a started server to answer PING.
START_TIMEOUT = 10.0
#: Seconds to wait for a server to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT = 3.0

_running: weakref.WeakSet[RedisServer] = weakref.WeakSet()


def redis_server_binary() -> str:
    """Path of ``redis-server``; skips the test (fails it under ``CI``) when there is none."""
    path = shutil.which("redis-server")
    if path is None:
        reason = (
            "REDIS TESTS NOT RUN: no `redis-server` on PATH "
            "(install it, e.g. `apt-get install redis-server`)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI is set, so this is a failure, not a skip")
        pytest.skip(reason)
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int, password: str | None, timeout: float) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            command = b"PING\r\n"
            if password is not None:
                command = f"AUTH {password}\r\n".encode() + command
            sock.sendall(command)
            reply = sock.recv(64)
    except OSError:
        return False
    return b"+PONG" in reply or (password is not None and reply.startswith(b"+OK"))


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port`` (a free port unless given).

    ``password`` starts it with ``--requirepass`` and puts it in :attr:`url`; ``cluster`` starts
    it as a Redis Cluster node (tests/support/redis_cluster.py joins such nodes).
    """

    def __init__(
        self, port: int | None = None, *, password: str | None = None, cluster: bool = False
    ) -> None:
        self.port = port if port is not None else _free_port()
        self.password = password
        self.cluster = cluster
        # The cluster bus port, by default port + 10000: not known to be free (or even valid).
        self.cluster_port = _free_port() if cluster else None
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0``."""
        auth = f":{self.password}@" if self.password is not None else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # ------------------------------------------------------------ blocking core

    def start_blocking(self) -> None:
        """Start the server and wait until it answers PING (at most START_TIMEOUT seconds)."""
        if self.running:
            return
        binary = redis_server_binary()
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="netrun-ws-redis-"))
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self._dir), "--daemonize", "no"]
        args += ["--logfile", str(self._dir / "redis.log")]
        if self.password is not None:
            args += ["--requirepass", self.password]
        if self.cluster:  # a node of tests/support/redis_cluster.py (its config file in the dir)
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            args += ["--cluster-node-timeout", "2000", "--cluster-port", str(self.cluster_port)]
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _running.add(self)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start: {self._log_tail()}")
            if _answers_ping(self.port, self.password, timeout=0.5):
                return
            time.sleep(0.02)
        self.stop_blocking()
        raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT:g}s")

    def kill_blocking(self) -> None:
        """SIGKILL the server (as a crash would) and wait until it is gone."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.kill()  # works on a SIGSTOPped process too
        process.wait(timeout=STOP_TIMEOUT)
        self._close_pipes()

    def stop_blocking(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after STOP_TIMEOUT) and remove its dir."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGCONT)  # a paused server cannot handle SIGTERM
                process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        self._close_pipes()
        _running.discard(self)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def pause(self) -> None:
        """SIGSTOP: the server keeps its port but answers nothing until :meth:`resume`."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self._signal(signal.SIGCONT)

    # ------------------------------------------------------------ async API

    async def start(self) -> None:
        await asyncio.to_thread(self.start_blocking)

    async def kill(self) -> None:
        await asyncio.to_thread(self.kill_blocking)

    async def restart(self) -> None:
        """Kill and start again on the same port (the data set is empty afterwards)."""
        await self.kill()
        await self.start()

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_blocking)

    async def __aenter__(self) -> RedisServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------ internals

    def _signal(self, signum: int) -> None:
        if not self.running or self._process is None:
            raise RuntimeError("redis-server is not running")
        self._process.send_signal(signum)

    def _close_pipes(self) -> None:
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()

    def _log_tail(self) -> str:
        stderr = b""
        if self._process is not None and self._process.stderr is not None:
            stderr = self._process.stderr.read() or b""
        log = self._dir / "redis.log" if self._dir is not None else None
        text = log.read_text(errors="replace") if log is not None and log.exists() else ""
        return (stderr.decode(errors="replace") + text)[-2000:]

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"RedisServer(127.0.0.1:{self.port}, {state})"


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        with contextlib.suppress(Exception):
            server.stop_blocking()


_shared: RedisServer | None = None


def shared_redis_server() -> RedisServer:
    """One server for the whole test session (started on first use, stopped at exit).

    Do not stop, kill or pause it; isolate data with a unique key prefix.
    """
    global _shared
    if _shared is None or not _shared.running:
        server = RedisServer()
        server.start_blocking()
        _shared = server
    return _shared


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    """A private server for one test; the test may kill, restart, pause and resume it."""
    async with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def shared_redis() -> Iterator[RedisServer]:
    """The session-wide server of :func:`shared_redis_server`."""
    yield shared_redis_server()
