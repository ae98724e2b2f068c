"""Several real `netrun-ws run` nodes sharing a private redis-server: one service.

Each test owns its redis-server (so it may kill or restart it) and starts 2-3 nodes on free
loopback ports with the Redis store. Bounded in time; processes are cleaned up on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from tests.host.helpers import recv_json, recv_until
from tests.support.cli_server import RunningServer, run_cli
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "cluster-test-api-key"
NODE_TTL = 2.0

pytestmark = pytest.mark.timeout(120)


def write_config(tmp_path: Path, per_user: int = 5, *, redis_cluster: bool = False) -> Path:
    config = tmp_path / "netrun_ws.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            server: {{api_key: "${{NETRUN_WS_API_KEY}}"}}
            limits: {{max_connections_per_user: {per_user}}}
            store:
              plugin: redis
              url: "${{REDIS_URL}}"
              node_ttl: {NODE_TTL}
              node_heartbeat: 0.5
              probe_interval: 0.5
              probe_timeout: 1.5
              cluster: {"true" if redis_cluster else "false"}
            heartbeat: null
            metrics: []
            plugins_dir: {ROOT / "plugins"}
            plugins: [chat]
            """
        )
    )
    return config


@contextlib.asynccontextmanager
async def cluster(
    tmp_path: Path, redis: RedisServer | RedisCluster, nodes: int = 2, per_user: int = 5
) -> AsyncIterator[list[RunningServer]]:
    """``nodes`` nodes on ``redis``, with ``cluster: true`` when it is a Redis Cluster."""
    config = write_config(tmp_path, per_user, redis_cluster=isinstance(redis, RedisCluster))
    env = {"REDIS_URL": redis.url, "NETRUN_WS_API_KEY": API_KEY}
    async with contextlib.AsyncExitStack() as stack:
        started = [
            await stack.enter_async_context(run_cli(config, env=env, cwd=tmp_path))
            for _ in range(nodes)
        ]
        yield started


async def client(node: RunningServer, user: str, **params: str) -> ClientConnection:
    query = "&".join(f"{k}={v}" for k, v in {"user_id": user, **params}.items())
    websocket = await connect(f"ws://{node.addr}/ws?{query}")
    welcome = await recv_json(websocket)
    assert welcome["type"] == "connect"
    return websocket


async def send(websocket: ClientConnection, message: dict[str, object]) -> None:
    await websocket.send(json.dumps(message))


async def test_direct_messages_rooms_and_publish_api_span_nodes(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with cluster(tmp_path, redis_server, nodes=3) as (a, b, c):
        alice, bob, carol = (
            await client(a, "alice"),
            await client(b, "bob"),
            await client(c, "carol"),
        )
        await send(alice, {"type": "direct", "to": "bob", "text": "hi bob"})
        assert await recv_until(bob, "direct") == {
            "type": "direct",
            "from": "alice",
            "text": "hi bob",
        }

        for websocket in (alice, bob, carol):
            await send(websocket, {"type": "join", "room": "lobby"})
            await recv_until(websocket, "joined")
        await send(bob, {"type": "join", "room": "lobby"})
        assert (await recv_until(bob, "joined"))["members"] == ["alice", "bob", "carol"]
        await send(carol, {"type": "say", "room": "lobby", "text": "hello all"})
        for websocket in (alice, bob, carol):
            said = await recv_until(websocket, "said")
            assert said == {
                "type": "said",
                "room": "lobby",
                "user_id": "carol",
                "text": "hello all",
            }

        async with httpx.AsyncClient() as http:
            answer = await http.post(
                f"http://{a.addr}/api/publish",
                headers={"Authorization": f"Bearer {API_KEY}"},
                json={"user": "bob", "data": {"type": "from-backend"}},
            )
            assert answer.status_code == 200
            assert answer.json() == {"local": 0, "remote_nodes": 2}
            assert await recv_until(bob, "from-backend") == {"type": "from-backend"}
            ready = (await http.get(f"http://{a.addr}/readyz")).json()
            assert len(ready["nodes"]) == 3
        for websocket in (alice, bob, carol):
            await websocket.close()


async def test_per_user_limit_holds_across_the_cluster(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with cluster(tmp_path, redis_server, per_user=2) as (a, b):
        first, second = await client(a, "dora"), await client(b, "dora")
        with pytest.raises(websockets.InvalidStatus) as info:
            await client(b, "dora")
        assert info.value.response.status_code == 429
        await first.close()
        third = await asyncio.wait_for(_retry_connect(a, "dora"), 10)
        await second.close()
        await third.close()


async def _retry_connect(node: RunningServer, user: str) -> ClientConnection:
    # The slot frees once node A has processed the close; poll briefly.
    while True:
        try:
            return await client(node, user)
        except websockets.InvalidStatus:
            await asyncio.sleep(0.05)


async def test_a_killed_node_leaves_presence_within_the_ttl(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with cluster(tmp_path, redis_server) as (a, b):
        alice, bob = await client(a, "alice"), await client(b, "bob")
        for websocket in (alice, bob):
            await send(websocket, {"type": "join", "room": "lobby"})
            await recv_until(websocket, "joined")
        b.process.send_signal(signal.SIGKILL)
        await b.process.wait()
        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        while True:
            await send(alice, {"type": "join", "room": "lobby"})
            members = (await recv_until(alice, "joined"))["members"]
            if members == ["alice"]:
                break
            assert loop.time() - killed_at < NODE_TTL + 2.0, "presence outlived the node TTL"
            await asyncio.sleep(0.2)
        async with httpx.AsyncClient() as http:
            nodes = (await http.get(f"http://{a.addr}/readyz")).json()["nodes"]
        assert len(nodes) == 1
        await alice.close()
        with contextlib.suppress(websockets.ConnectionClosed):
            await bob.close()


async def test_redis_restart_resumes_delivery_and_signals_the_gap(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with cluster(tmp_path, redis_server) as (a, b):
        alice, bob = await client(a, "alice"), await client(b, "bob")
        await redis_server.restart()
        for websocket in (alice, bob):
            gap = await recv_until(websocket, "delivery_gap", timeout=20)
            assert gap["until"] >= gap["since"]
        # Local delivery never stopped; cross-node delivery is back.
        await send(alice, {"type": "direct", "to": "bob", "text": "after restart"})
        assert (await recv_until(bob, "direct", timeout=10))["text"] == "after restart"
        assert "Traceback" not in a.text() + b.text()
        await alice.close()
        await bob.close()


async def test_a_drained_session_resumes_on_another_node(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with cluster(tmp_path, redis_server) as (a, b):
        erin = await client(a, "erin", session_id="erin-1")
        await send(erin, {"type": "join", "room": "ops"})
        await recv_until(erin, "joined")
        a.process.send_signal(signal.SIGTERM)
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(erin.recv(), 10)
        assert erin.close_code in (1001, 1012)
        await asyncio.wait_for(a.process.wait(), 15)
        websocket = await connect(f"ws://{b.addr}/ws?user_id=erin&session_id=erin-1")
        welcome = await recv_json(websocket)
        assert welcome["resumed"] is True
        assert welcome["rooms"] == ["ops"]
        await websocket.close()
