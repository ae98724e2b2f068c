"""`netrun-ws run --workers N` (docs/cli.md): real worker processes on one port, one real
redis-server, real clients. Each worker is a node of the cluster; the welcome's ``pid`` (from
tests/cluster/pid_plugin.py) says which one serves a client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from tests.cluster.test_cluster import send
from tests.host.helpers import recv_json, recv_until
from tests.support.cli_server import RunningServer, cli_env, run_cli
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)


def write_config(tmp_path: Path, store: str, per_user: int = 5) -> Path:
    config = tmp_path / "netrun_ws.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            server: {{drain_timeout: 5}}
            limits: {{max_connections_per_user: {per_user}}}
            store: {store}
            heartbeat: null
            metrics: []
            plugins_dir: {ROOT / "plugins"}
            plugins: [chat, tests.cluster.pid_plugin]
            """
        )
    )
    return config


REDIS_STORE = '{plugin: redis, url: "${REDIS_URL}", node_ttl: 2, node_heartbeat: 0.5}'


@contextlib.asynccontextmanager
async def workers(
    tmp_path: Path, redis: RedisServer, count: int = 2, per_user: int = 5
) -> AsyncIterator[RunningServer]:
    config = write_config(tmp_path, REDIS_STORE, per_user)
    env = {"REDIS_URL": redis.url}
    async with run_cli(config, "--workers", str(count), env=env, cwd=tmp_path) as server:
        yield server


async def welcomed(server: RunningServer, user: str) -> tuple[ClientConnection, dict[str, Any]]:
    websocket = await connect(f"ws://{server.addr}/ws?user_id={user}")
    welcome = await recv_json(websocket)
    assert welcome["type"] == "connect"
    return websocket, welcome


async def on_worker(server: RunningServer, user: str, pid: int | None) -> ClientConnection:
    """A client of ``user`` served by worker ``pid`` (None: by a worker not seen before is not
    asked, any will do); connections that land elsewhere are closed and tried again."""
    async with asyncio.timeout(20):
        while True:
            try:
                websocket, welcome = await welcomed(server, user)
            except websockets.InvalidStatus:  # a closed try still counts for the user: retry
                await asyncio.sleep(0.05)
                continue
            if pid is None or welcome["pid"] == pid:
                return websocket
            await websocket.close()


async def worker_pids(server: RunningServer, count: int) -> list[int]:
    """Connect until ``count`` distinct workers have answered (each starts listening when it is
    up; the kernel then spreads connections over them)."""
    seen: set[int] = set()
    async with asyncio.timeout(30):
        while len(seen) < count:
            websocket, welcome = await welcomed(server, f"probe{len(seen)}")
            seen.add(welcome["pid"])
            await websocket.close()
            await asyncio.sleep(0.02)
    return sorted(seen)


async def test_clients_spread_over_two_workers_which_act_as_one_cluster(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with workers(tmp_path, redis_server, per_user=2) as server:
        one, two = await worker_pids(server, 2)
        assert server.process.pid not in (one, two)
        async with httpx.AsyncClient() as http:  # each worker is a node of the cluster
            nodes = (await http.get(f"http://{server.addr}/readyz")).json()["nodes"]
        assert len(nodes) == 2
        alice, bob = await on_worker(server, "alice", one), await on_worker(server, "bob", two)
        # send_to_user across workers
        await send(alice, {"type": "direct", "to": "bob", "text": "hi bob"})
        assert await recv_until(bob, "direct") == {
            "type": "direct",
            "from": "alice",
            "text": "hi bob",
        }
        # a room spanning both workers
        for websocket in (alice, bob):
            await send(websocket, {"type": "join", "room": "lobby"})
            await recv_until(websocket, "joined")
        await send(bob, {"type": "say", "room": "lobby", "text": "hello"})
        for websocket in (alice, bob):
            said = await recv_until(websocket, "said")
            assert said == {"type": "said", "room": "lobby", "user_id": "bob", "text": "hello"}
        # the per-user limit (2) counts dora's connections on both workers together
        dora_one = await on_worker(server, "dora", one)
        dora_two = await on_worker(server, "dora", two)
        for _ in range(6):  # whichever worker takes it
            with pytest.raises(websockets.InvalidStatus) as refused:
                await welcomed(server, "dora")
            assert refused.value.response.status_code == 429
        for websocket in (alice, bob, dora_one, dora_two):
            await websocket.close()
    assert "Traceback" not in server.text()


async def test_a_killed_worker_is_restarted_and_its_clients_reconnect(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with workers(tmp_path, redis_server) as server:
        one, two = await worker_pids(server, 2)
        erin = await on_worker(server, "erin", one)
        os.kill(one, signal.SIGKILL)
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    await erin.recv()
        async with asyncio.timeout(20):
            while f"(pid {one}) died (signal SIGKILL); restarting it" not in server.text():  # noqa: ASYNC110 - another process's output
                await asyncio.sleep(0.1)
        restarted = [pid for pid in await worker_pids(server, 2) if pid != two]
        assert restarted and restarted[0] != one
        erin = await on_worker(server, "erin", restarted[0])  # reconnected, on the new worker
        await send(erin, {"type": "join", "room": "lobby"})
        assert (await recv_until(erin, "joined"))["members"] == ["erin"]
        await erin.close()
    assert server.text().count("restarting it") == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_drains_every_worker_with_1012(
    tmp_path: Path, redis_server: RedisServer, sig: signal.Signals
) -> None:
    async with workers(tmp_path, redis_server) as server:
        one, two = await worker_pids(server, 2)
        clients = [await on_worker(server, f"u{pid}", pid) for pid in (one, two)]
        server.process.send_signal(sig)
        for websocket in clients:
            hint = await recv_until(websocket, "disconnect", timeout=10)
            assert hint["code"] == 1012
            with pytest.raises(websockets.ConnectionClosed):
                async with asyncio.timeout(10):
                    while True:
                        await websocket.recv()
            assert websocket.close_code == 1012
        assert await asyncio.wait_for(server.process.wait(), 20) == 0
    assert "Traceback" not in server.text()
    assert "restarting" not in server.text()


async def test_workers_leave_with_a_killed_supervisor(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with workers(tmp_path, redis_server) as server:
        pids = await worker_pids(server, 2)
        server.process.send_signal(signal.SIGKILL)
        async with asyncio.timeout(20):
            while any(_alive(pid) for pid in pids):  # noqa: ASYNC110 - other processes
                await asyncio.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "netrun_ws", "run", "--config", str(config), *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, env=cli_env(), cwd=config.parent
    )


def test_the_memory_store_with_two_workers_is_refused_in_one_line(tmp_path: Path) -> None:
    done = _run(write_config(tmp_path, "{plugin: memory}"), "--workers", "2")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "server.workers is 2 but store.plugin is 'memory'" in lines[0]


def test_workers_that_cannot_start_stop_the_supervisor_with_their_code(tmp_path: Path) -> None:
    unreachable = '{plugin: redis, url: "redis://127.0.0.1:1/0", operation_timeout: 1}'
    done = _run(write_config(tmp_path, unreachable), "--workers", "2")
    assert done.returncode == 4
    assert "restarting" not in done.stderr


@pytest.mark.parametrize("value", ["0", "many"])
def test_a_bad_worker_count_is_a_config_error(tmp_path: Path, value: str) -> None:
    done = _run(write_config(tmp_path, "{plugin: memory}"), "--workers", value)
    assert done.returncode == 2
    assert "server.workers" in done.stderr
    assert "Traceback" not in done.stderr
