"""Recovery across real `netrun-ws run` nodes sharing a private redis-server (or the shared Redis
Cluster): a client resumes on another node than it left, also after its node was killed with
SIGKILL, and on a cluster with rooms whose history and bus live on different masters."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from netrun_ws.redis.layout import KeyLayout
from tests.cluster.test_cluster import API_KEY, cluster
from tests.history.helpers import last_positions, next_message, open_client, read_until
from tests.support.cli_server import RunningServer
from tests.support.redis_cluster import RedisCluster, shared_redis_cluster
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(120)
AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def say(node: RunningServer, room: str, n: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://{node.addr}") as http:
        body = {"room": room, "data": {"type": "tick", "n": n}}
        answer = await http.post("/api/publish", headers=AUTH, json=body)
        assert answer.status_code == 200, answer.text


async def join(websocket: Any, room: str) -> None:
    await websocket.send(json.dumps({"type": "join", "room": room}))
    await read_until(websocket, "joined")


def ticks(messages: list[dict[str, Any]]) -> list[int]:
    return [m["n"] for m in messages if m.get("type") == "tick"]


@pytest.fixture(params=["redis", "redis-cluster"])
async def redis_backend(
    request: pytest.FixtureRequest,
) -> AsyncIterator[RedisServer | RedisCluster]:
    """One private Redis, or the session's 3-master Redis Cluster (`store: {cluster: true}`)."""
    if request.param == "redis-cluster":
        yield shared_redis_cluster()
        return
    async with RedisServer() as server:
        yield server


async def test_a_client_leaves_node_a_and_recovers_on_node_b(
    tmp_path: Path, redis_backend: RedisServer | RedisCluster
) -> None:
    async with cluster(tmp_path, redis_backend, nodes=2) as (a, b):
        ann, welcome = await open_client(a.addr, "ann")
        await join(ann, "feed")
        await say(b, "feed", 1)
        seen = [await next_message(ann)]
        assert seen[0]["n"] == 1 and seen[0]["pos"]["channel"] == "room:feed"
        await ann.close()
        for n in range(2, 6):
            await say(a, "feed", n)
        ann, again = await open_client(b.addr, "ann", welcome["session_id"], last_positions(seen))
        assert again["resumed"] is True and again["rooms"] == ["feed"]
        recovery = await read_until(ann, "recovered")
        assert ticks(recovery) == [2, 3, 4, 5]
        room = [m["pos"]["offset"] for m in recovery if "pos" in m]
        assert room == list(range(seen[0]["pos"]["offset"] + 1, room[-1] + 1))
        await say(a, "feed", 6)
        live = await next_message(ann)
        assert live["n"] == 6 and live["pos"]["offset"] == room[-1] + 1
        await ann.close()


def rooms_on_every_master(redis_cluster: RedisCluster) -> list[str]:
    """One room per master of the cluster: its history keys (its slot group's) live there."""
    layout = KeyLayout("netrun_ws", cluster=True)  # the nodes' prefix and default groups
    rooms: dict[int, str] = {}
    n = 0
    while len(rooms) < len(redis_cluster.nodes):
        room, n = f"feed{n}", n + 1
        owner = redis_cluster.owner_of(layout.history_base(f"room:{room}"))
        assert owner is redis_cluster.owner_of(layout.buses[layout.group_of(f"room:{room}")])
        rooms.setdefault(owner.port, room)
    return list(rooms.values())


async def test_rooms_on_every_redis_cluster_master_cross_nodes_and_are_recovered(
    tmp_path: Path, redis_cluster: RedisCluster
) -> None:
    rooms = rooms_on_every_master(redis_cluster)
    channels = sorted(f"room:{room}" for room in rooms)
    async with cluster(tmp_path, redis_cluster, nodes=2) as (a, b):
        ann, welcome = await open_client(a.addr, "ann")
        for room in rooms:
            await join(ann, room)
        for room in rooms:
            await say(b, room, 1)  # crosses from b to a on each room's group bus
        seen = [await next_message(ann) for _ in rooms]
        assert sorted(m["pos"]["channel"] for m in seen) == channels
        await ann.close()
        for n in (2, 3):
            for room in rooms:
                await say(a, room, n)
        # The session's joins (one hash per slot group) and each room's history are read
        # from the room's master, on the other node.
        ann, again = await open_client(b.addr, "ann", welcome["session_id"], last_positions(seen))
        assert again["resumed"] is True and sorted(again["rooms"]) == sorted(rooms)
        recovery = await read_until(ann, "recovered")
        for channel in channels:
            replayed = [m for m in recovery if m.get("pos", {}).get("channel") == channel]
            assert ticks(replayed) == [2, 3], channel
        await ann.close()


async def test_a_client_of_a_sigkilled_node_recovers_on_another(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with cluster(tmp_path, redis_server, nodes=2) as (a, b):
        ann, welcome = await open_client(a.addr, "ann")
        await join(ann, "feed")  # recorded in Redis at join time, not at disconnect
        stop = asyncio.Event()
        sent = 0

        async def publisher() -> None:
            nonlocal sent
            while not stop.is_set():
                sent += 1
                await say(b, "feed", sent)
                await asyncio.sleep(0.005)

        task = asyncio.create_task(publisher())
        received: list[dict[str, Any]] = []
        while len(ticks(received)) < 30:
            received.append(await next_message(ann))
        a.process.send_signal(signal.SIGKILL)
        await a.process.wait()
        try:
            while True:  # what was already on the wire before the kill
                received.append(await next_message(ann, timeout=1))
        except Exception:
            pass
        await asyncio.sleep(0.2)
        ann, again = await open_client(
            b.addr, "ann", welcome["session_id"], last_positions(received)
        )
        assert again["rooms"] == ["feed"]
        received += await read_until(ann, "recovered")
        stop.set()
        await task
        while ticks(received)[-1] != sent:
            received.append(await next_message(ann))
        assert ticks(received) == list(range(1, sent + 1))
        assert [m for m in received if m.get("type") == "gap"] == []
        await ann.close()


async def test_flushed_redis_keys_give_an_epoch_changed_gap(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with cluster(tmp_path, redis_server, nodes=1) as (a,):
        ann, welcome = await open_client(a.addr, "ann")
        await ann.close()
        raw = aioredis.Redis.from_url(redis_server.url)
        try:
            await raw.flushall()
        finally:
            await raw.aclose()
        old = welcome["positions"]
        ann, again = await open_client(a.addr, "ann", welcome["session_id"], old)
        recovery = await read_until(ann, "recovered")
        new = again["positions"]["user:ann"]
        assert new["epoch"] != old["user:ann"]["epoch"]
        assert recovery[0] == {
            "type": "gap",
            "channel": "user:ann",
            "reason": "epoch_changed",
            **new,
        }
        await ann.close()
