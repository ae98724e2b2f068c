"""A private, real Redis Cluster for tests: three masters on free loopback ports, no replicas.

``shared_redis_cluster()`` (or the session fixture ``shared_redis_cluster_fixture``, exposed
as ``redis_cluster``) starts three ``redis-server --cluster-enabled yes`` processes (each a
:class:`~tests.support.redis_server.RedisServer` with cluster arguments), joins them with
``redis-cli --cluster create ... --cluster-yes`` (16384 slots split in three), and waits until
every node reports ``cluster_state:ok``. Tests share it and isolate their data with a unique
key prefix; they must not stop or pause its nodes. Every node is stopped at interpreter exit.

Without ``redis-server`` or ``redis-cli`` on PATH the test is skipped loudly, or FAILS under
``CI`` (as for the single server).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from tests.support.redis_server import RedisServer

__all__ = ["RedisCluster", "redis_cluster", "shared_redis_cluster"]

#: Seconds for ``redis-cli --cluster create`` and for every node to report cluster_state:ok.
FORM_TIMEOUT = 20.0


def _command(client: redis.Redis, *args: str | int | bytes) -> Any:
    """One command's reply; redis-py's ``execute_command`` is untyped (the reply's shape is the
    command's)."""
    execute: Callable[..., Any] = client.execute_command
    return execute(*args)


def _redis_cli() -> str:
    path = shutil.which("redis-cli")
    if path is None:
        reason = "REDIS CLUSTER TESTS NOT RUN: no `redis-cli` on PATH (it forms the cluster)"
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI is set, so this is a failure, not a skip")
        pytest.skip(reason)
    return path


def _cluster_state(port: int) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.settimeout(1.0)
            sock.sendall(b"CLUSTER INFO\r\n")
            reply = sock.recv(4096).decode(errors="replace")
    except OSError:
        return ""
    for line in reply.splitlines():
        if line.startswith("cluster_state:"):
            return line.partition(":")[2].strip()
    return ""


class RedisCluster:
    """``masters`` cluster-enabled servers joined into one cluster covering every slot."""

    def __init__(self, masters: int = 3) -> None:
        self.nodes = [RedisServer(cluster=True) for _ in range(masters)]

    @property
    def url(self) -> str:
        """A seed node's URL (``redis://127.0.0.1:PORT``); the client discovers the others."""
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    @property
    def running(self) -> bool:
        return all(node.running for node in self.nodes)

    def start_blocking(self) -> None:
        cli = _redis_cli()
        try:
            for node in self.nodes:
                node.start_blocking()
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            subprocess.run(
                [cli, "--cluster", "create", *addresses, "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=FORM_TIMEOUT,
            )
            deadline = time.monotonic() + FORM_TIMEOUT
            while not all(_cluster_state(node.port) == "ok" for node in self.nodes):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the Redis Cluster did not form within {FORM_TIMEOUT:g}s")
                time.sleep(0.05)
        except BaseException:
            self.stop_blocking()
            raise

    def owner_of(self, key: str) -> RedisServer:
        """The node that serves ``key``'s slot now."""
        slot = key_slot(key.encode())
        with redis.Redis(port=self.nodes[0].port) as seed:
            for start, end, primary, *_ in _command(seed, "CLUSTER SLOTS"):
                if start <= slot <= end:
                    return next(node for node in self.nodes if node.port == int(primary[1]))
        raise LookupError(f"no node serves slot {slot}")

    def move_slot_blocking(self, key: str, to: RedisServer) -> None:
        """Migrate ``key``'s slot, keys included, to ``to`` as a resharding does (IMPORTING,
        MIGRATING, MIGRATE of its keys, then SETSLOT NODE on every node)."""
        slot = key_slot(key.encode())
        source = self.owner_of(key)
        if source is to:
            raise ValueError(f"slot {slot} is already on {to}")
        clients = {node.port: redis.Redis(port=node.port) for node in self.nodes}
        try:
            src, dst = clients[source.port], clients[to.port]
            src_id, dst_id = (
                _command(src, "CLUSTER MYID"),
                _command(dst, "CLUSTER MYID"),
            )
            _command(dst, "CLUSTER SETSLOT", slot, "IMPORTING", src_id)
            _command(src, "CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
            while keys := _command(src, "CLUSTER GETKEYSINSLOT", slot, 100):
                _command(src, "MIGRATE", "127.0.0.1", to.port, "", 0, 5000, "KEYS", *keys)
            for port in [to.port, source.port, *clients]:  # the new owner first
                _command(clients[port], "CLUSTER SETSLOT", slot, "NODE", dst_id)
        finally:
            for client in clients.values():
                client.close()

    def stop_blocking(self) -> None:
        for node in self.nodes:
            node.stop_blocking()

    def __repr__(self) -> str:
        ports = ",".join(str(node.port) for node in self.nodes)
        return f"RedisCluster(127.0.0.1:{ports})"


_shared: RedisCluster | None = None


def shared_redis_cluster() -> RedisCluster:
    """One cluster for the whole test session (formed on first use, stopped at exit)."""
    global _shared
    if _shared is None or not _shared.running:
        cluster = RedisCluster()
        cluster.start_blocking()
        _shared = cluster
    return _shared


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """The session-wide cluster of :func:`shared_redis_cluster`."""
    yield shared_redis_cluster()
