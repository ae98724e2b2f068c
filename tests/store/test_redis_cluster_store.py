"""RedisStore on a real Redis Cluster when the cluster moves the store's slot under it (as a
resharding does): commands follow MOVED, the shard subscription follows the slot to its new
owner and reports the window as a gap, history and presence carry on with the migrated keys.

The cluster is a private one (the test moves slots); the store and history contracts run on
the shared cluster (test_store_contract.py, test_history_contract.py).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest

from netrun_ws.redis.broker import node_url
from netrun_ws.redis.store import RedisStore
from netrun_ws.store import Envelope
from tests.store import Recorder, eventually
from tests.support.redis_cluster import RedisCluster

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def private_cluster() -> AsyncIterator[RedisCluster]:
    cluster = RedisCluster()
    await asyncio.to_thread(cluster.start_blocking)
    try:
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop_blocking)


def say(n: int) -> Envelope:
    return Envelope("room", "lobby", json.dumps({"type": "say", "n": n}))


async def test_a_moved_slot_is_followed_by_commands_subscription_and_history(
    private_cluster: RedisCluster,
) -> None:
    prefix = f"moved-{uuid.uuid4().hex[:8]}"
    stores = [
        RedisStore(
            private_cluster.url,
            key_prefix=prefix,
            cluster=True,
            probe_interval=0.1,
            probe_timeout=0.5,
            operation_timeout=2.0,
        )
        for _ in range(2)
    ]
    recorders = [Recorder(), Recorder()]
    for store, recorder in zip(stores, recorders, strict=True):
        await store.start(recorder.deliver, recorder.on_gap)
    a, b = stores
    try:
        await a.join_room("lobby", "c-a", "ann")
        await b.publish(say(1))
        await eventually(lambda: len(recorders[0].envelopes) == 1, what="the first message")
        before = await b.history_top("room:lobby")

        tag = f"{{{prefix}}}"
        owner = private_cluster.owner_of(tag)
        target = next(node for node in private_cluster.nodes if node is not owner)
        await asyncio.to_thread(private_cluster.move_slot_blocking, tag, target)
        assert private_cluster.owner_of(tag) is target

        # Both subscribers were on the old owner: each resubscribes and reports the window.
        for recorder in recorders:
            await eventually(lambda r=recorder: len(r.gaps) == 1, what="a delivery gap")
        await eventually(a.ready, what="store a ready again")
        await eventually(b.ready, what="store b ready again")
        for store in stores:
            assert store.stats()["subscribed"] is True and store.stats()["resubscribes"] == 1

        # The history keys moved with the slot: offsets continue in the same epoch.
        result = await b.publish(say(2))
        assert result.remote_nodes == 1
        await eventually(lambda: len(recorders[0].envelopes) == 2, what="the message after")
        moved = recorders[0].envelopes[-1].pos
        assert moved is not None and moved.epoch == before.epoch
        assert moved.offset == before.offset + 1
        assert await a.room_members("lobby") == {"c-a": "ann"}
        assert len(await b.nodes()) == 2
    finally:
        for store in stores:
            await store.stop()


def test_node_url_keeps_scheme_and_credentials() -> None:
    assert node_url("redis://:pw@seed:7000/0", "10.0.0.2", 7001) == "redis://:pw@10.0.0.2:7001"
    assert node_url("rediss://u:p@seed:7000", "::1", 7002) == "rediss://u:p@[::1]:7002"
    assert node_url("redis://seed:7000", "h", 7003) == "redis://h:7003"


async def test_the_per_user_limit_and_presence_span_stores_on_a_cluster(
    redis_cluster: RedisCluster,
) -> None:
    prefix = f"limit-{uuid.uuid4().hex[:8]}"
    stores = [
        RedisStore(
            redis_cluster.url, key_prefix=prefix, cluster=True, probe_interval=0.2, probe_timeout=1
        )
        for _ in range(2)
    ]
    for store in stores:
        recorder = Recorder()
        await store.start(recorder.deliver, recorder.on_gap)
    a, b = stores
    try:
        assert await a.add_connection("c-1", "dora", 2) is True
        assert await b.add_connection("c-2", "dora", 2) is True
        assert await b.add_connection("c-3", "dora", 2) is False
        await b.join_room("ops", "c-2", "dora")
        assert await a.room_members("ops") == {"c-2": "dora"}
        assert await a.online_users() == {"dora"}
        await a.remove_connection("c-1", "dora")
        assert await b.add_connection("c-3", "dora", 2) is True
        await b.revoke("dora", 1.0, 4102444800.0)
        assert await a.revoked(["dora", "eve"]) == [1.0, None]
    finally:
        for store in stores:
            await store.stop()
