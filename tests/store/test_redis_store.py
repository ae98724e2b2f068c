"""RedisStore as a cluster: several nodes (stores) sharing a real redis-server, and its faults.

Nodes are RedisStore instances in this process (a node is a store: its own connections, tasks and
node id); the kill -9 test runs a node in a child process and SIGKILLs it. Fault tests own a
private redis-server (``redis_server``) that they kill, restart, pause and resume. Timings are
short (probe every 0.2 s, node_ttl 1.5 s) and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from netrun_ws.builtin.store_redis import Options, Plugin
from netrun_ws.config import HistoryConfig
from netrun_ws.reconnection import ReconnectionConfig
from netrun_ws.redis.broker import decode_message, encode_envelope
from netrun_ws.redis.calls import RedisStoreError
from netrun_ws.redis.store import RedisStore
from netrun_ws.store import Envelope
from tests.store import Recorder, eventually
from tests.support.redis_server import RedisServer, _free_port

NODE_TTL = 1.5
PROBE_TIMEOUT = 0.6
OPERATION_TIMEOUT = 1.0
RECONNECT = ReconnectionConfig(initial_delay=0.05, max_delay=0.4, max_attempts=0)
REPO = Path(__file__).resolve().parents[2]

Cluster = Callable[[str, int], Awaitable[list[tuple[RedisStore, Recorder]]]]


def fast_store(url: str, key_prefix: str = "netrun_ws") -> RedisStore:
    """A node with short timings, so faults show within a second; history off (these tests are
    about the plain bus: tests/history covers positioned messages)."""
    store = RedisStore(
        url,
        key_prefix=key_prefix,
        node_ttl=NODE_TTL,
        node_heartbeat=0.3,
        probe_interval=0.2,
        probe_timeout=PROBE_TIMEOUT,
        operation_timeout=OPERATION_TIMEOUT,
        reconnect=RECONNECT,
    )
    store.configure_history(HistoryConfig(rooms_enabled=False, users_enabled=False))
    return store


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """``await cluster(url, n)`` starts n nodes sharing ``url`` and a fresh key prefix."""
    async with AsyncExitStack() as stack:

        async def start(url: str, count: int) -> list[tuple[RedisStore, Recorder]]:
            prefix = f"cluster-{uuid.uuid4().hex[:10]}"
            nodes = []
            for _ in range(count):
                store = fast_store(url, prefix)
                recorder = Recorder()
                await store.start(recorder.deliver, recorder.on_gap)
                stack.push_async_callback(store.stop)
                nodes.append((store, recorder))
            return nodes

        yield start


class ChannelSpy:
    """A raw subscriber on the cluster channel: counts envelopes (not probes) published."""

    def __init__(self, url: str, channel: str) -> None:
        self._client = aioredis.Redis.from_url(url)
        self._pubsub = self._client.pubsub()
        self._channel = channel
        self._task: asyncio.Task[None] | None = None
        self.envelopes: list[Envelope] = []

    async def __aenter__(self) -> ChannelSpy:
        await self._pubsub.subscribe(self._channel)
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        while True:
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                decoded = decode_message(message["data"])
                if decoded.envelope is not None:
                    self.envelopes.append(decoded.envelope)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        await self._client.aclose()


# ------------------------------------------------------------------ cross-node delivery


async def test_one_publish_reaches_every_other_node_once_and_origin_locally_once(
    shared_redis: RedisServer, cluster: Cluster
) -> None:
    (a, a_got), (b, b_got), (c, c_got) = await cluster(shared_redis.url, 3)
    async with ChannelSpy(shared_redis.url, a.channel) as spy:
        envelope = Envelope("user", "bob", '{"type":"chat","text":"hi"}')
        result = await a.publish(envelope)
        # Redis hands every subscriber the channel's messages in the order it took them: once
        # a message published after a's has reached everyone, so has anything a's publish
        # caused, duplicates included (a's own copy comes back to a, which must skip it).
        barrier = Envelope("broadcast", None, "barrier")
        raw = aioredis.Redis.from_url(shared_redis.url)
        try:
            await raw.publish(a.channel, encode_envelope("test-node", barrier))
        finally:
            await raw.aclose()
        everyone = (a_got, b_got, c_got)
        await eventually(
            lambda: all(barrier in got.envelopes for got in everyone) and barrier in spy.envelopes,
            what="the barrier on every node",
        )
        assert b_got.envelopes == [envelope, barrier]
        assert c_got.envelopes == [envelope, barrier]
        assert a_got.envelopes == [envelope, barrier]  # the local delivery; its own copy skipped
        assert spy.envelopes == [envelope, barrier]  # ONE message on the channel
        assert result.local == 1
        assert result.remote_nodes == 3  # b, c and the spy: every subscriber but a
    assert a.stats()["received"] == 1  # the barrier only
    assert b.stats()["received"] == 2 and c.stats()["received"] == 2


async def test_broadcast_to_many_is_one_message_and_binary_survives(
    shared_redis: RedisServer, cluster: Cluster
) -> None:
    (a, _), (_, b_got) = await cluster(shared_redis.url, 2)
    async with ChannelSpy(shared_redis.url, a.channel) as spy:
        envelopes = [
            Envelope("broadcast", None, b"\x00\x01\xfe", exclude_users=frozenset({"x", "y"})),
            Envelope("room", "lobby", "snow ☃ and \ud800", exclude_connections=frozenset({"c"})),
            Envelope("connection", "conn-1", ""),
        ]
        for envelope in envelopes:
            assert (await a.publish(envelope)).remote_nodes == 2
        await eventually(lambda: len(b_got.envelopes) == 3, what="three deliveries on b")
        assert b_got.envelopes == envelopes
        await eventually(lambda: len(spy.envelopes) == 3, what="three messages on the channel")


async def test_a_failing_deliver_is_logged_and_the_next_envelope_still_arrives(
    shared_redis: RedisServer, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    ((a, _),) = await cluster(shared_redis.url, 1)
    failing = Recorder(fail_first=1)
    b_store = fast_store(shared_redis.url, a.key_prefix)
    await b_store.start(failing.deliver, failing.on_gap)
    try:
        await a.publish(Envelope("user", "u", "first"))
        await a.publish(Envelope("user", "u", "second"))
        await eventually(lambda: failing.payloads() == ["second"], what="second delivered")
        assert b_store.stats()["delivery_errors"] == 1
        assert "delivering an envelope from node" in caplog.text
    finally:
        await b_store.stop()


async def test_malformed_messages_on_the_channel_are_counted_and_dropped(
    shared_redis: RedisServer, cluster: Cluster
) -> None:
    (a, _), (b, b_got) = await cluster(shared_redis.url, 2)
    raw = aioredis.Redis.from_url(shared_redis.url)
    try:
        for junk in (b"no header", b'{"not": "a list"}\n', b'[9,"x","user",null,0,[],[]]\nx'):
            await raw.publish(a.channel, junk)
    finally:
        await raw.aclose()
    await a.publish(Envelope("user", "u", "fine"))
    await eventually(lambda: b_got.payloads() == ["fine"], what="the good message")
    assert b.stats()["malformed"] == 3


# ------------------------------------------------------------------ presence across nodes


async def test_per_user_limit_holds_across_nodes_under_concurrent_adds(
    shared_redis: RedisServer, cluster: Cluster
) -> None:
    (a, _), (b, _) = await cluster(shared_redis.url, 2)
    adds = [(a if i % 2 else b).add_connection(f"conn-{i}", "alice", 5) for i in range(20)]
    admitted = await asyncio.gather(*adds)
    assert sum(admitted) == 5
    assert await a.online_users() == {"alice"} == await b.online_users()
    winner = next(f"conn-{i}" for i, ok in enumerate(admitted) if ok)
    owner = a if int(winner.split("-")[1]) % 2 else b
    other = b if owner is a else a
    assert not await other.add_connection("late", "alice", 5)
    await owner.remove_connection(winner, "alice")
    assert await other.add_connection("late", "alice", 5)


async def test_rooms_and_online_users_span_nodes_and_stop_removes_a_node_at_once(
    shared_redis: RedisServer, cluster: Cluster
) -> None:
    (a, _), (b, _), (c, _) = await cluster(shared_redis.url, 3)
    await a.add_connection("a1", "alice", None)
    await b.add_connection("b1", "bob", None)
    await a.join_room("lobby", "a1", "alice")
    await b.join_room("lobby", "b1", "bob")
    assert await c.room_members("lobby") == {"a1": "alice", "b1": "bob"}
    assert await c.online_users() == {"alice", "bob"}
    assert {n["node_id"] for n in await c.nodes()} == {a.node_id, b.node_id, c.node_id}
    await b.stop()
    assert await c.room_members("lobby") == {"a1": "alice"}
    assert await c.online_users() == {"alice"}
    assert {n["node_id"] for n in await c.nodes()} == {a.node_id, c.node_id}


_DOOMED_NODE = """
import asyncio, sys
from netrun_ws.redis.store import RedisStore

async def main() -> None:
    store = RedisStore(sys.argv[1], key_prefix=sys.argv[2], node_ttl=float(sys.argv[3]),
                       node_heartbeat=0.3, probe_interval=0.2, probe_timeout=0.6)
    async def deliver(envelope):
        return 0
    async def on_gap(gap):
        return None
    await store.start(deliver, on_gap)
    for i in range(3):
        assert await store.add_connection(f"doomed-{i}", "dora", 3)
    await store.join_room("lobby", "doomed-0", "dora")
    print(store.node_id, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_node_killed_with_sigkill_vanishes_within_node_ttl_and_is_swept(
    shared_redis: RedisServer, cluster: Cluster
) -> None:
    ((a, _),) = await cluster(shared_redis.url, 1)
    await a.join_room("lobby", "a1", "alice")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _DOOMED_NODE,
        shared_redis.url,
        a.key_prefix,
        str(NODE_TTL),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        line = await asyncio.wait_for(child.stdout.readline(), 20)  # type: ignore[union-attr]
        doomed = line.decode().strip()
        assert doomed, "the child node did not start"
        assert doomed in {n["node_id"] for n in await a.nodes()}
        assert await a.room_members("lobby") == {"a1": "alice", "doomed-0": "dora"}
        assert not await a.add_connection("mine", "dora", 3)  # dora is at her limit
        child.send_signal(signal.SIGKILL)
        await asyncio.wait_for(child.wait(), 5)
        killed_at = time.monotonic()

        async def gone() -> bool:
            asked_at = time.monotonic()
            answer = (
                doomed not in {n["node_id"] for n in await a.nodes()}
                and await a.room_members("lobby") == {"a1": "alice"}
                and "dora" not in await a.online_users()
            )
            # The dead node sent its last heartbeat (the key's TTL) before the kill, so Redis
            # expires the key by killed_at + NODE_TTL (+ 0.5 s, should Redis run that last
            # heartbeat late): whatever asks later must not see the node, however long this
            # machine took to ask. (Left to a janitor sweep, it could stay a node_ttl more.)
            late = asked_at - killed_at > NODE_TTL + 0.5
            assert answer or not late, "presence still had the dead node after its TTL"
            return answer

        await eventually(gone, timeout=NODE_TTL + 10, what="the dead node gone from presence")
        assert await a.add_connection("mine", "dora", 3)  # her dead connections do not count

        raw = aioredis.Redis.from_url(shared_redis.url, decode_responses=True)
        prefix = a.key_prefix

        async def swept() -> bool:
            leftovers = await raw.exists(
                f"{prefix}:node:{doomed}:conns", f"{prefix}:node:{doomed}:rooms"
            )
            nodes = await raw.smembers(f"{prefix}:nodes")
            users = await raw.hgetall(f"{prefix}:presence:user:dora")
            return leftovers == 0 and doomed not in nodes and list(users.values()) == [a.node_id]

        try:
            await eventually(swept, timeout=2 * NODE_TTL + 10, what="the janitor sweep")
        finally:
            await raw.aclose()
        assert a.stats()["dead_nodes_removed"] == 1
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


# ------------------------------------------------------------------ faults


async def cross_node_works(sender: RedisStore, receiver: Recorder, text: str) -> None:
    """Publish ``text`` until it arrives (a message published mid-recovery may be lost)."""

    async def arrived() -> bool:
        if text in receiver.payloads():
            return True
        await sender.publish(Envelope("user", "u", text))
        await asyncio.sleep(0.05)
        return text in receiver.payloads()

    await eventually(arrived, timeout=10, interval=0.05, what=f"{text!r} across nodes")


async def test_redis_restart_resumes_delivery_restores_presence_and_signals_one_gap(
    redis_server: RedisServer, cluster: Cluster
) -> None:
    (a, a_got), (b, b_got) = await cluster(redis_server.url, 2)
    await a.add_connection("a1", "alice", None)
    await a.join_room("lobby", "a1", "alice")
    await a.join_room("old", "a1", "alice")
    await cross_node_works(a, b_got, "before")
    await redis_server.kill()
    killed = time.time()  # no probe can come back after this
    # Writes while Redis is down: applied to this node's copy, written back on recovery.
    await asyncio.wait_for(a.leave_room("old", "a1"), 2)
    await asyncio.wait_for(a.join_room("new", "a1", "alice"), 2)
    await redis_server.start()
    await eventually(lambda: a_got.gaps and b_got.gaps, timeout=10, what="gaps signalled")
    await cross_node_works(a, b_got, "after")
    await cross_node_works(b, a_got, "back")
    after = time.time()
    for store, recorded in ((a, a_got), (b, b_got)):
        assert len(recorded.gaps) == 1, recorded.gaps
        gap = recorded.gaps[0]
        # From the last proof of a working subscription (before the kill) to the resubscribe.
        assert gap.started_at <= killed <= gap.ended_at <= after
        assert gap.ended_at - gap.started_at < 15  # this outage, not e.g. since start-up
        assert "subscription" in gap.reason
        assert store.stats()["gaps"] == 1

    async def presence_back() -> bool:
        return (
            await b.room_members("lobby") == {"a1": "alice"}
            and await b.room_members("new") == {"a1": "alice"}
            and await b.room_members("old") == {}
            and await b.online_users() == {"alice"}
        )

    await eventually(presence_back, timeout=10, what="presence rewritten after the restart")
    await eventually(a.ready, timeout=10, what="a ready")


async def test_client_kill_pubsub_makes_nodes_unready_then_resubscribes(
    redis_server: RedisServer, cluster: Cluster
) -> None:
    (a, a_got), (b, b_got) = await cluster(redis_server.url, 2)
    assert await a.ready() and await b.ready()
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        killed = await admin.client_kill_filter(_type="pubsub")
    finally:
        await admin.aclose()
    assert killed == 2
    await eventually(lambda: not a.stats()["subscribed"], timeout=10, interval=0.005)
    assert await a.ready() is False
    await eventually(a.ready, timeout=10, what="a ready again")
    await eventually(b.ready, timeout=10, what="b ready again")
    await cross_node_works(a, b_got, "after kill")
    await cross_node_works(b, a_got, "other way")
    assert [len(a_got.gaps), len(b_got.gaps)] == [1, 1]
    assert a.stats()["resubscribes"] == 1


async def test_paused_redis_goes_unready_keeps_local_delivery_and_recovers(
    redis_server: RedisServer, cluster: Cluster
) -> None:
    (a, a_got), (b, b_got) = await cluster(redis_server.url, 2)
    await b.join_room("lobby", "b1", "bob")
    await cross_node_works(a, b_got, "before")
    redis_server.pause()
    try:
        paused_at = time.monotonic()
        await eventually(lambda: not a.stats()["subscribed"], timeout=10, what="watchdog trips")
        # Tripped by the unanswered probe (the gap's reason below says so; the subscriber
        # itself would wait forever), after about PROBE_TIMEOUT.
        assert time.monotonic() - paused_at < PROBE_TIMEOUT + 2.0
        assert await a.ready() is False
        took: list[float] = []
        for i in range(20):
            started = time.monotonic()
            result = await a.publish(Envelope("user", "u", f"during-{i}"))
            took.append(time.monotonic() - started)
            assert result.local == 1 and result.remote_nodes == 0
        # At most the first PUBLISH waits (operation_timeout, or until the unanswered probe
        # marks the outage); the rest are dropped at once. A publish that waited out the
        # operation timeout took at least that long (asyncio never gives up earlier), and
        # all of them together took nowhere near 20 waits.
        assert sum(1 for seconds in took if seconds >= OPERATION_TIMEOUT) <= 1
        assert sum(took) < 5 * OPERATION_TIMEOUT
        assert a.stats()["publish_failures"] == 20
        assert a_got.payloads()[-1] == "during-19"
        await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - paused_at)))
    finally:
        redis_server.resume()
    resumed_at = time.monotonic()
    await eventually(a.ready, timeout=10, what="a ready after SIGCONT")
    await eventually(b.ready, timeout=10, what="b ready after SIGCONT")
    assert time.monotonic() - resumed_at < 8  # resubscribe backoff is capped at 0.4 s
    await cross_node_works(a, b_got, "after")
    assert [len(a_got.gaps), len(b_got.gaps)] == [1, 1]
    assert "no probe" in a_got.gaps[0].reason
    # node keys expired during the 2 s pause (node_ttl 1.5 s): presence is rewritten.
    await eventually(
        lambda: _members(a, "lobby", {"b1": "bob"}), timeout=3, what="presence after pause"
    )
    assert b.stats()["presence_resyncs"] >= 1


async def _members(store: RedisStore, room: str, expected: dict[str, str]) -> bool:
    return await store.room_members(room) == expected


async def test_publish_while_redis_is_down_is_prompt_local_counted_and_logged_once(
    redis_server: RedisServer, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    (a, a_got), (_, b_got) = await cluster(redis_server.url, 2)
    await redis_server.kill()
    caplog.set_level(logging.WARNING, logger="netrun_ws.redis.broker")
    for i in range(200):
        started = time.monotonic()
        result = await a.publish(Envelope("user", "u", f"down-{i}"))
        assert result.local == 1 and result.remote_nodes == 0
        # Prompt: none waits out operation_timeout (Redis refuses at once, or is not asked).
        assert time.monotonic() - started < OPERATION_TIMEOUT
    assert len(a_got.envelopes) == 200
    assert a.stats()["publish_failures"] == 200
    assert a.stats()["publishing"] is False
    failing = [r for r in caplog.records if "PUBLISH" in r.getMessage() and "failing" in r.msg]
    assert len(failing) == 1
    with pytest.raises(RedisStoreError, match=r"redis://127\.0\.0\.1"):
        await a.add_connection("c1", "alice", 1)  # the cluster limit cannot be checked
    await redis_server.start()
    await eventually(lambda: a.stats()["publishing"], timeout=10, what="publishing again")
    await cross_node_works(a, b_got, "after")


async def test_start_fails_fast_with_one_line_naming_the_masked_url() -> None:
    url = f"redis://:s3cret-pw@127.0.0.1:{_free_port()}/0"
    store = RedisStore(url, operation_timeout=1.0)
    recorder = Recorder()
    started = time.monotonic()
    with pytest.raises(RedisStoreError) as caught:
        await store.start(recorder.deliver, recorder.on_gap)
    message = str(caught.value)
    assert time.monotonic() - started < 3
    assert "\n" not in message
    assert "s3cret-pw" not in message
    assert "redis://:***@127.0.0.1" in message
    assert await store.ready() is False
    with pytest.raises(RuntimeError, match="not started"):
        await store.online_users()


async def test_password_protected_redis_works_and_stats_mask_the_password() -> None:
    async with RedisServer(password="pw-Zq81") as server:
        store = fast_store(server.url)
        recorder = Recorder()
        await store.start(recorder.deliver, recorder.on_gap)
        try:
            assert await store.ready()
            assert "pw-Zq81" not in repr(store) and "pw-Zq81" not in str(store.stats())
            assert store.stats()["redis"].startswith("redis://:***@")
        finally:
            await store.stop()


# ------------------------------------------------------------------ the plugin


def test_plugin_options_defaults_and_store() -> None:
    options = Options.model_validate({"url": "redis://:pw@127.0.0.1:6379/0"})
    assert (options.key_prefix, options.node_ttl, options.node_heartbeat) == ("netrun_ws", 10, 2)
    assert (options.probe_interval, options.probe_timeout) == (1, 3)
    assert (options.connection_ttl, options.operation_timeout) == (3600, 5)
    assert "pw" not in repr(options)
    plugin = Plugin()
    plugin.configure(options)
    store = plugin.provide_store()
    assert isinstance(store, RedisStore)
    assert store.location == "redis://:***@127.0.0.1:6379/0"
    assert store.key_prefix == "netrun_ws" and store.node_ttl == 10


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({}, "url"),
        ({"url": ""}, "is empty"),
        ({"url": "http://:pw@host/"}, "must start with redis://"),
        ({"url": "redis://h", "node_heartbeat": 10, "node_ttl": 5}, "shorter than node_ttl"),
        ({"url": "redis://h", "probe_interval": 5, "probe_timeout": 1}, "at least probe_interval"),
        ({"url": "redis://h", "key_prefix": "has space"}, "key_prefix"),
        ({"url": "redis://h", "node_ttl": 0}, "node_ttl"),
        ({"url": "redis://h", "surprise": 1}, "surprise"),
        ({"url": "unix:///tmp/r.sock", "cluster": True}, "needs a redis:// or rediss://"),
    ],
)
def test_plugin_options_reject_bad_values(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error) as caught:
        Options.model_validate(options)
    assert ":pw@" not in str(caught.value)


def test_store_constructor_rejects_inconsistent_timings() -> None:
    with pytest.raises(ValueError, match="node_heartbeat"):
        RedisStore("redis://127.0.0.1:1/0", node_ttl=1, node_heartbeat=1)
    with pytest.raises(ValueError, match="probe_timeout"):
        RedisStore("redis://127.0.0.1:1/0", probe_interval=2, probe_timeout=1)
    with pytest.raises(ValueError, match="redis_url must start with"):
        RedisStore("http://127.0.0.1:1/0")
    with pytest.raises(ValueError, match="Redis Cluster url must start with") as caught:
        RedisStore("unix://:pw@/tmp/r.sock", cluster=True)
    assert "pw" not in str(caught.value)


def test_the_cluster_option_builds_a_cluster_store_with_its_keys_under_a_hash_tag() -> None:
    plugin = Plugin()
    plugin.configure(Options.model_validate({"url": "redis://h:7000", "cluster": True}))
    store = plugin.provide_store()
    assert isinstance(store, RedisStore) and store.cluster is True
    assert store.sessions.key_prefix == "{netrun_ws}"  # the per-connection keys: one slot
    # History and the bus: 16 slot groups, each its own tag and shard channel.
    buses = store.layout.buses
    assert len(set(buses)) == 16 and store.channel == buses[0]
    assert all(re.fullmatch(r"\{netrun_ws:\d+(\.\d+)?\}:bus", bus) for bus in buses)
    plugin.configure(
        Options.model_validate({"url": "redis://h:7000", "cluster": True, "bus_groups": 3})
    )
    assert len(plugin.provide_store().layout.buses) == 3
    with pytest.raises(ValidationError, match="bus_groups"):
        Options.model_validate({"url": "redis://h:7000", "cluster": True, "bus_groups": 0})


def test_one_redis_keeps_its_key_names_and_one_bus() -> None:
    store = RedisStore("redis://127.0.0.1:1/0", key_prefix="app", bus_groups=8)
    assert store.layout.buses == ("app:bus",) and store.channel == "app:bus"
    assert store.layout.history_base("room:lobby") == "app:h:room:lobby"
    assert store.layout.joins_key("s1", 0) == "app:hj:s1"
