"""RedisStore on a real Redis Cluster: channel history and the bus spread over the masters (one
slot group per hash tag and shard channel), and when the cluster moves one group's slot (as a
resharding does): commands follow MOVED, that group's shard subscription follows the slot to its
new owner and reports the window as a gap while the other groups keep delivering, and history
and presence carry on with the migrated keys.

The cluster is a private one (the test moves slots); the store and history contracts run on
the shared cluster (test_store_contract.py, test_history_contract.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

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


@contextlib.asynccontextmanager
async def two_nodes(url: str, name: str) -> AsyncIterator[tuple[list[RedisStore], list[Recorder]]]:
    """Two started cluster stores sharing a fresh prefix, and what each delivers."""
    prefix = f"{name}-{uuid.uuid4().hex[:8]}"
    stores = [cluster_store(url, prefix) for _ in range(2)]
    recorders = [Recorder(), Recorder()]
    try:
        for store, recorder in zip(stores, recorders, strict=True):
            await store.start(recorder.deliver, recorder.on_gap)
        yield stores, recorders
    finally:
        for store in stores:
            await store.stop()


@contextlib.asynccontextmanager
async def steady_traffic(store: RedisStore, rooms: list[str]) -> AsyncIterator[list[int]]:
    """Publish ``say(room, n)`` to each of ``rooms`` every 10 ms from ``store`` while the block
    runs (from the 5th message on); the yielded list's one item counts what was published, once
    the block is left (each publish completes: none is cancelled midway)."""
    sent = [0]
    stop = asyncio.Event()

    async def steady() -> None:
        while not stop.is_set():
            sent[0] += 1
            for room in rooms:
                await store.publish(say(room, sent[0]))
            await asyncio.sleep(0.01)

    publisher = asyncio.create_task(steady())
    try:
        await eventually(lambda: sent[0] >= 5, what="steady traffic")
        yield sent
    finally:
        stop.set()
        await asyncio.wait_for(publisher, 10)


def say(room: str, n: int) -> Envelope:
    return Envelope("room", room, json.dumps({"type": "say", "n": n}))


def cluster_store(url: str, prefix: str) -> RedisStore:
    return RedisStore(
        url,
        key_prefix=prefix,
        cluster=True,
        probe_interval=0.1,
        probe_timeout=0.5,
        operation_timeout=2.0,
    )


def rooms_by_owner(store: RedisStore, cluster: RedisCluster) -> dict[int, dict[int, str]]:
    """Room names by the port of the master that owns their group, by group: one room for
    every group."""
    found: dict[int, dict[int, str]] = {}
    layout, n = store.layout, 0
    while sum(len(groups) for groups in found.values()) < layout.groups:
        room, n = f"r{n}", n + 1
        group = layout.group_of(f"room:{room}")
        owner = cluster.owner_of(layout.tags[group]).port
        found.setdefault(owner, {}).setdefault(group, room)
    return found


async def on_node(port: int, *command: str | int) -> Any:
    """One command's reply from one master (no cluster client: no redirection)."""
    raw = aioredis.Redis(port=port)
    try:
        execute: Callable[..., Awaitable[Any]] = raw.execute_command  # untyped in redis-py
        return await execute(*command)
    finally:
        await raw.aclose()


def offsets(recorder: Recorder, room: str) -> list[int]:
    return [e.pos.offset for e in recorder.envelopes if e.target == room and e.pos is not None]


async def test_a_moved_group_slot_is_followed_alone_and_the_other_groups_keep_delivering(
    private_cluster: RedisCluster,
) -> None:
    async with two_nodes(private_cluster.url, "moved") as (stores, recorders):
        a, b = stores
        by_owner = rooms_by_owner(a, private_cluster)
        assert len(by_owner) == 3  # the 16 groups spread over the 3 masters
        assert a.stats()["subscriber_connections"] == 3
        source, target = (node for node in private_cluster.nodes[:2])
        (moved_group, moved), (_, neighbour) = list(by_owner[source.port].items())[:2]
        elsewhere = next(iter(by_owner[target.port].values()))
        await a.join_room(moved, "c-a", "ann")
        await b.publish(say(moved, 1))
        await eventually(lambda: offsets(recorders[0], moved) == [1], what="the first message")
        before = await b.history_top(f"room:{moved}")

        # Rooms in other groups, one on the same master (so on the same subscription
        # connection) as the moved group, one elsewhere, are published to all along.
        async with steady_traffic(b, [neighbour, elsewhere]) as published:
            tag = a.layout.tags[moved_group]
            await asyncio.to_thread(private_cluster.move_slot_blocking, tag, target)
            assert private_cluster.owner_of(tag) is target
            # Both subscribers had the moved group on the old owner: each resubscribes it
            # (on its connection to the new owner) and reports the window, naming its channel.
            for recorder in recorders:
                await eventually(lambda r=recorder: len(r.gaps) == 1, what="a delivery gap")
                assert a.layout.buses[moved_group] in recorder.gaps[0].reason
            await eventually(a.ready, what="store a ready again")
            await eventually(b.ready, what="store b ready again")
            await asyncio.sleep(0.3)  # more traffic after the move
        sent = published[0]
        for store in stores:
            stats = store.stats()
            assert stats["subscribed"] is True and stats["resubscribes"] == 1
            assert stats["gaps"] == 1 and stats["subscriber_connections"] == 3
        # The other groups were never interrupted: every offset arrived, in order, no hole.
        for room in (neighbour, elsewhere):
            await eventually(
                lambda r=room: offsets(recorders[0], r) == list(range(1, sent + 1)),
                what=f"every message of {room}",
            )

        # The moved group's history keys moved with its slot: offsets continue, same epoch.
        result = await b.publish(say(moved, 2))
        assert result.remote_nodes == 1
        await eventually(lambda: offsets(recorders[0], moved) == [1, 2], what="after the move")
        after = recorders[0].envelopes[-1].pos
        assert after is not None and after.epoch == before.epoch
        assert await a.room_members(moved) == {"c-a": "ann"}
        assert len(await b.nodes()) == 2


async def test_a_lost_subscription_connection_resubscribes_its_groups_and_only_them(
    private_cluster: RedisCluster,
) -> None:
    async with two_nodes(private_cluster.url, "killed") as (stores, recorders):
        a, b = stores
        by_owner = rooms_by_owner(a, private_cluster)
        killed, spared = private_cluster.nodes[:2]
        victim = next(iter(by_owner[killed.port].values()))
        bystander = next(iter(by_owner[spared.port].values()))
        async with steady_traffic(b, [bystander]) as published:
            # Both stores' subscription connections to one master are killed: each closes it
            # and resubscribes that master's groups, with one gap naming them.
            assert await on_node(killed.port, "CLIENT KILL", "TYPE", "pubsub") == 2
            for recorder in recorders:
                await eventually(lambda r=recorder: len(r.gaps) == 1, what="a delivery gap")
                reason = recorder.gaps[0].reason
                assert "subscription connection failed" in reason
                for group in by_owner[killed.port]:
                    assert a.layout.buses[group] in reason
                for group in by_owner[spared.port]:
                    assert a.layout.buses[group] not in reason
            await eventually(a.ready, what="store a ready again")
            await asyncio.sleep(0.3)
        sent = published[0]
        # The other masters' groups kept delivering: no hole in the bystander room.
        await eventually(
            lambda: offsets(recorders[0], bystander) == list(range(1, sent + 1)),
            what="every message of the bystander room",
        )
        await b.publish(say(victim, 1))
        await eventually(lambda: offsets(recorders[0], victim) == [1], what="the victim room")
        assert a.stats()["subscriber_connections"] == 3 and a.stats()["resubscribes"] == 1


async def test_history_and_the_bus_are_spread_over_the_masters(
    redis_cluster: RedisCluster,
) -> None:
    async with two_nodes(redis_cluster.url, "spread") as (stores, recorders):
        a, b = stores
        by_owner = rooms_by_owner(a, redis_cluster)
        rooms = {port: next(iter(groups.values())) for port, groups in by_owner.items()}
        assert len(rooms) == 3
        # Each bus channel is a shard channel on its group's master: Redis counts this
        # node's and the other node's subscriptions there, and none on the other masters.
        for group, bus in enumerate(a.layout.buses):
            owner = redis_cluster.owner_of(bus)
            assert owner is redis_cluster.owner_of(a.layout.tags[group])
            for node in redis_cluster.nodes:
                reply = await on_node(node.port, "PUBSUB SHARDNUMSUB", bus)
                assert reply == [(bus.encode(), 2 if node is owner else 0)], (bus, node)
        positions = {}
        for room in rooms.values():
            await b.publish(say(room, 1))
            positions[room] = await a.history_top(f"room:{room}")
            await b.publish(say(room, 2))
        await eventually(lambda: len(recorders[0].envelopes) == 6, what="every message")
        for port, room in rooms.items():
            # The room's history keys are on its group's master, and only there.
            meta = a.layout.history_base(f"room:{room}")
            assert redis_cluster.owner_of(meta).port == port
            slot = key_slot(meta.encode())
            for node in redis_cluster.nodes:
                held = await on_node(node.port, "CLUSTER COUNTKEYSINSLOT", slot)
                if node.port == port:
                    assert await on_node(node.port, "EXISTS", meta, meta + ":s") == 2
                assert (held > 0) == (node.port == port), (room, node)
            # ... and the message after the position is read back from there.
            read = await a.history_since(f"room:{room}", positions[room], 10, 10_000)
            assert read.status == "ok" and [json.loads(m)["n"] for m in read.messages] == [2]


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
