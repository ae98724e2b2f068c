"""Real `netrun-ws run` nodes on a real 3-master Redis Cluster (``store: {cluster: true}``):
cross-node delivery, as on one Redis (tests/cluster/test_cluster.py). Recovery on the cluster is
tests/history/test_cluster_recovery.py, run on both backends."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cluster.test_cluster import API_KEY, client, cluster, send
from tests.host.helpers import recv_until
from tests.support.redis_cluster import RedisCluster

pytestmark = pytest.mark.timeout(120)


async def test_two_nodes_on_a_redis_cluster_deliver_user_and_room_messages(
    tmp_path: Path, redis_cluster: RedisCluster
) -> None:
    async with cluster(tmp_path, redis_cluster, nodes=2) as (a, b):
        alice, bob = await client(a, "alice"), await client(b, "bob")
        await send(alice, {"type": "direct", "to": "bob", "text": "hi bob"})
        assert (await recv_until(bob, "direct"))["text"] == "hi bob"
        for websocket in (alice, bob):
            await send(websocket, {"type": "join", "room": "lobby"})
            await recv_until(websocket, "joined")
        await send(alice, {"type": "join", "room": "lobby"})
        assert (await recv_until(alice, "joined"))["members"] == ["alice", "bob"]
        await send(bob, {"type": "say", "room": "lobby", "text": "hello all"})
        for websocket in (alice, bob):
            said = await recv_until(websocket, "said")
            assert said["user_id"] == "bob" and said["text"] == "hello all"
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                f"http://{a.addr}/api/publish",
                headers={"Authorization": f"Bearer {API_KEY}"},
                json={"user": "bob", "data": {"type": "from-backend"}},
            )
            assert answer.json() == {"local": 0, "remote_nodes": 1}
            assert await recv_until(bob, "from-backend") == {"type": "from-backend"}
            ready = (await http.get(f"http://{b.addr}/readyz")).json()
            assert len(ready["nodes"]) == 2
        assert "Traceback" not in a.text() + b.text()
        for websocket in (alice, bob):
            await websocket.close()
