"""The HistoryStore contract, the same for the memory and the Redis store: positions, reads
since a position, epochs, join records; and, on Redis, one order for every node."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from netrun_ws.builtin.store_memory import MemoryStore
from netrun_ws.config import HistoryConfig
from netrun_ws.redis.store import RedisStore
from netrun_ws.store import Envelope, HistoryStore, Position
from tests.store import Recorder, eventually
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer

BACKENDS = ["memory", "redis", "redis-cluster"]


def redis_store(url: str, prefix: str, *, cluster: bool = False) -> RedisStore:
    return RedisStore(
        url, key_prefix=prefix, probe_interval=0.2, probe_timeout=1.0, cluster=cluster
    )


@pytest.fixture(params=["redis", "redis-cluster"])
def redis_at(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """The URL of the shared Redis or Redis Cluster, and whether it is a cluster."""
    cluster = request.param == "redis-cluster"
    server: RedisServer | RedisCluster = request.getfixturevalue(
        "redis_cluster" if cluster else "shared_redis"
    )
    return server.url, cluster


@pytest.fixture(params=BACKENDS)
async def store(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[MemoryStore | RedisStore, Recorder]]:
    made: MemoryStore | RedisStore
    if request.param == "memory":
        made = MemoryStore()
    else:
        cluster = request.param == "redis-cluster"
        server: RedisServer | RedisCluster = request.getfixturevalue(
            "redis_cluster" if cluster else "shared_redis"
        )
        made = redis_store(server.url, f"hist-{uuid.uuid4().hex[:10]}", cluster=cluster)
    made.configure_history(HistoryConfig(rooms_size=3, max_replay_messages=10))
    recorder = Recorder()
    await made.start(recorder.deliver, recorder.on_gap)
    try:
        yield made, recorder
    finally:
        await made.stop()


def room(n: int) -> Envelope:
    return Envelope("room", "lobby", json.dumps({"type": "say", "n": n}))


async def test_room_and_user_messages_get_consecutive_positions_once(
    store: tuple[MemoryStore | RedisStore, Recorder],
) -> None:
    history, recorder = store
    assert isinstance(history, HistoryStore)
    for n in range(3):
        await history.publish(room(n))
    await history.publish(Envelope("user", "ann", "{}"))
    await history.publish(Envelope("broadcast", None, '{"type":"all"}'))
    await history.publish(Envelope("room", "lobby", b"\x00binary"))
    await history.publish(Envelope("room", "lobby", "plain text"))
    await eventually(lambda: len(recorder.envelopes) == 7, what="seven deliveries")
    positions = [envelope.pos for envelope in recorder.envelopes]
    epoch = (await history.history_top("room:lobby")).epoch  # per channel on Redis
    user_epoch = (await history.history_top("user:ann")).epoch
    assert positions == [
        Position(1, epoch),
        Position(2, epoch),
        Position(3, epoch),
        Position(1, user_epoch),
        None,
        None,
        None,
    ]
    first = json.loads(recorder.envelopes[0].payload)
    pos = {"channel": "room:lobby", "offset": 1, "epoch": epoch}
    assert first == {"pos": pos, "type": "say", "n": 0}
    assert json.loads(recorder.envelopes[3].payload) == {
        "pos": {"channel": "user:ann", "offset": 1, "epoch": user_epoch}
    }
    assert await history.history_top("room:lobby") == Position(3, epoch)
    empty = await history.history_top("room:empty")
    assert empty.offset == 0 and await history.history_top("room:empty") == empty


async def test_reads_since_a_position_are_exact_and_bounded(
    store: tuple[MemoryStore | RedisStore, Recorder],
) -> None:
    history, recorder = store
    for n in range(5):
        await history.publish(room(n))
    await eventually(lambda: len(recorder.envelopes) == 5, what="five deliveries")
    top = await history.history_top("room:lobby")
    epoch = top.epoch
    read = await history.history_since("room:lobby", Position(3, epoch), 10, 10_000)
    assert (read.status, read.truncated, read.top) == ("ok", False, Position(5, epoch))
    assert list(read.messages) == [e.payload for e in recorder.envelopes[3:]]
    assert (await history.history_since("room:lobby", Position(5, epoch), 10, 1)).messages == ()
    # size 3 keeps offsets 3..5: offset 1 missed 2, which is gone
    gone = await history.history_since("room:lobby", Position(1, epoch), 10, 10_000)
    assert gone.status == "out_of_history" and gone.messages == ()
    future = await history.history_since("room:lobby", Position(9, epoch), 10, 10_000)
    assert future.status == "out_of_history"
    other = await history.history_since("room:lobby", Position(3, "other-epoch"), 10, 10_000)
    assert (other.status, other.top) == ("epoch_changed", top)
    few = await history.history_since("room:lobby", Position(2, epoch), 2, 10_000)
    assert few.truncated and few.messages == ()
    small = await history.history_since("room:lobby", Position(2, epoch), 10, 50)
    assert small.truncated and small.messages == ()


async def test_the_byte_bound_counts_utf8_bytes_not_characters(
    store: tuple[MemoryStore | RedisStore, Recorder],
) -> None:
    history, recorder = store
    # 100 characters of text, 200 bytes on the wire (UTF-8), in each of two messages.
    for _ in range(2):
        await history.publish(
            Envelope("room", "lobby", json.dumps({"t": "é" * 100}, ensure_ascii=False))
        )
    await eventually(lambda: len(recorder.envelopes) == 2, what="two deliveries")
    payloads = [str(envelope.payload) for envelope in recorder.envelopes]
    chars = sum(len(payload) for payload in payloads)
    size = sum(len(payload.encode()) for payload in payloads)
    assert size == chars + 200
    epoch = (await history.history_top("room:lobby")).epoch
    start = Position(0, epoch)
    fits = await history.history_since("room:lobby", start, 10, size)
    assert fits.messages == tuple(payloads) and not fits.truncated
    for bound in (size - 1, chars, 10):  # chars: the first fits, the two do not
        read = await history.history_since("room:lobby", start, 10, bound)
        assert (read.status, read.truncated, read.messages) == ("ok", True, ()), bound


async def test_a_range_both_expired_and_too_big_is_out_of_history(
    store: tuple[MemoryStore | RedisStore, Recorder],
) -> None:
    history, recorder = store
    history.configure_history(HistoryConfig(rooms_size=3, rooms_ttl=0.3))
    for n in range(2):
        await history.publish(room(n))
    await eventually(lambda: len(recorder.envelopes) == 2, what="two deliveries")
    await asyncio.sleep(0.5)
    epoch = (await history.history_top("room:lobby")).epoch
    for bound in (10_000, 10):  # the age is the reason, whatever the byte bound
        read = await history.history_since("room:lobby", Position(0, epoch), 10, bound)
        assert (read.status, read.truncated) == ("out_of_history", False), bound


async def test_join_records_are_kept_per_session_until_left(
    store: tuple[MemoryStore | RedisStore, Recorder],
) -> None:
    history, _recorder = store
    await history.publish(room(0))
    joined = await history.record_join("s1", "room:lobby")
    assert joined.offset == 1
    await history.record_join("s1", "user:ann")
    channels = await history.session_channels("s1")
    assert set(channels) == {"room:lobby", "user:ann"} and channels["room:lobby"] == joined
    await history.forget_join("s1", "room:lobby")
    assert set(await history.session_channels("s1")) == {"user:ann"}
    assert await history.session_channels("nobody") == {}


async def test_every_redis_node_delivers_in_offset_order(redis_at: tuple[str, bool]) -> None:
    url, cluster = redis_at
    prefix = f"order-{uuid.uuid4().hex[:10]}"
    nodes = [redis_store(url, prefix, cluster=cluster) for _ in range(3)]
    recorders = [Recorder() for _ in nodes]
    for node, recorder in zip(nodes, recorders, strict=True):
        await node.start(recorder.deliver, recorder.on_gap)
    try:
        # Concurrent publishes from every node to one channel.
        await asyncio.gather(*(node.publish(room(n)) for n in range(60) for node in nodes))
        for recorder in recorders:
            await eventually(lambda r=recorder: len(r.envelopes) == 180, what="180 deliveries")
            offsets = [e.pos.offset for e in recorder.envelopes if e.pos is not None]
            assert offsets == list(range(1, 181))
        assert [e.payload for e in recorders[0].envelopes] == [
            e.payload for e in recorders[2].envelopes
        ]
    finally:
        for node in nodes:
            await node.stop()


async def test_lost_redis_keys_start_a_new_epoch(shared_redis: RedisServer) -> None:
    prefix = f"epoch-{uuid.uuid4().hex[:10]}"
    node = redis_store(shared_redis.url, prefix)
    recorder = Recorder()
    await node.start(recorder.deliver, recorder.on_gap)
    try:
        await node.publish(room(0))
        before = await node.history_top("room:lobby")
        raw = aioredis.Redis.from_url(shared_redis.url)
        try:
            keys = [key async for key in raw.scan_iter(f"{prefix}:h:*")]
            await raw.delete(*keys)  # what FLUSHALL or a restart without persistence does
        finally:
            await raw.aclose()
        after = await node.history_top("room:lobby")
        assert after.offset == 0 and after.epoch != before.epoch
        read = await node.history_since("room:lobby", before, 10, 10_000)
        assert read.status == "epoch_changed" and read.top == after
    finally:
        await node.stop()


async def test_while_redis_is_down_a_room_message_is_delivered_here_without_a_position(
    redis_server: RedisServer,
) -> None:
    node = RedisStore(
        redis_server.url, probe_interval=0.2, probe_timeout=1.0, operation_timeout=1.0
    )
    recorder = Recorder()
    await node.start(recorder.deliver, recorder.on_gap)
    try:
        await node.publish(room(0))
        await eventually(lambda: len(recorder.envelopes) == 1, what="the first delivery")
        await redis_server.kill()
        result = await node.publish(room(1))
        assert result.local == 1 and result.remote_nodes == 0
        last = recorder.envelopes[-1]
        assert last.pos is None and json.loads(last.payload) == {"type": "say", "n": 1}
        assert node.stats()["publish_failures"] >= 1
        await redis_server.start()
        # Redis came back empty: the channel starts a new epoch, never reusing the old offsets.
        restarted = await node.history_top("room:lobby")
        assert restarted.offset == 0 and restarted.epoch != recorder.envelopes[0].pos.epoch  # type: ignore[union-attr]
    finally:
        await node.stop()


async def test_a_positioned_redis_publish_is_one_command_that_keeps_and_publishes(
    redis_server: RedisServer,
) -> None:
    # Issue 14: history is written together with the live publish, one round trip per publish.
    # MONITOR shows every command a client sends, and those a script runs (client "lua").
    node = redis_store(redis_server.url, f"trip-{uuid.uuid4().hex[:10]}")
    recorder = Recorder()
    await node.start(recorder.deliver, recorder.on_gap)
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        await node.publish(room(0))  # the script is loaded now: what follows is steady state
        markers = [f"marker{uuid.uuid4().hex}" for _ in range(5)]
        seen: list[tuple[str, str]] = []  # (client type, command) naming a marker
        async with raw.monitor() as monitor:

            async def watch() -> None:
                async for info in monitor.listen():
                    if any(marker in info["command"] for marker in markers):
                        seen.append((info["client_type"], info["command"]))

            watching = asyncio.create_task(watch())
            try:
                for marker in markers:
                    payload = json.dumps({"type": "say", "m": marker})
                    await node.publish(Envelope("room", "lobby", payload))
                await eventually(
                    lambda: sum(kind == "lua" for kind, _ in seen) == 2 * len(markers),
                    what="the scripts' XADD and PUBLISH",
                )
            finally:
                watching.cancel()
        sent = [command.split(" ", 1)[0].upper() for kind, command in seen if kind != "lua"]
        ran = [command.split(" ", 1)[0].upper() for kind, command in seen if kind == "lua"]
        assert sent == ["EVALSHA"] * len(markers)  # one command per publish, nothing beside it
        assert ran == ["XADD", "PUBLISH"] * len(markers)  # kept, then published, in the script
        offsets = [e.pos.offset for e in recorder.envelopes if e.pos is not None]
        assert offsets == list(range(1, 7))
    finally:
        await raw.aclose()
        await node.stop()


async def test_a_redis_read_past_the_byte_bound_does_not_send_the_range(
    redis_server: RedisServer,
) -> None:
    # A resume may not make the server read unbounded history: past max_bytes the script sends
    # the first entry only (what the age check needs), not the whole range.
    node = redis_store(redis_server.url, f"bytes-{uuid.uuid4().hex[:10]}")
    node.configure_history(HistoryConfig(rooms_size=10))
    recorder = Recorder()
    await node.start(recorder.deliver, recorder.on_gap)
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        await node.publish(room(0))
        for _ in range(3):
            await node.publish(Envelope("room", "lobby", json.dumps({"big": "x" * 100_000})))
        await eventually(lambda: len(recorder.envelopes) == 4, what="four deliveries")
        epoch = (await node.history_top("room:lobby")).epoch

        async def output_bytes() -> int:
            return int((await raw.info("stats"))["total_net_output_bytes"])

        before = await output_bytes()
        read = await node.history_since("room:lobby", Position(0, epoch), 10, 1000)
        sent = await output_bytes() - before
        assert (read.status, read.truncated) == ("ok", True)
        assert sent < 20_000, sent  # the whole range is over 300,000 bytes
        whole = await node.history_since("room:lobby", Position(0, epoch), 10, 1_000_000)
        assert len(whole.messages) == 4
        assert await output_bytes() - before > 300_000  # what the bound saved
    finally:
        await raw.aclose()
        await node.stop()
