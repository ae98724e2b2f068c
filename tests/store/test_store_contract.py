"""One behavioural suite for every Store: MemoryStore and RedisStore answer alike on one node.

Each test runs against every store (``store`` is parametrised): memory, Redis, and Redis on a
3-master Redis Cluster. The Redis stores use the session-wide redis-server or cluster with a key
prefix of their own, so tests do not see each other's data.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from netrun_ws.builtin.store_memory import MemoryStore
from netrun_ws.config import HistoryConfig
from netrun_ws.redis.store import RedisStore
from netrun_ws.store import Envelope, PublishResult, Store
from tests.store import Recorder
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer

BACKENDS = ["memory", "redis", "redis-cluster"]


def make_store(backend: str, request: pytest.FixtureRequest) -> Store:
    """A store with history off: these tests are about plain delivery (tests/history and
    tests/store/test_history_contract.py cover positions)."""
    store: MemoryStore | RedisStore
    if backend == "memory":
        store = MemoryStore()
    else:
        cluster = backend == "redis-cluster"
        server: RedisServer | RedisCluster = request.getfixturevalue(
            "redis_cluster" if cluster else "shared_redis"
        )
        store = RedisStore(
            server.url,
            cluster=cluster,
            key_prefix=f"contract-{uuid.uuid4().hex[:10]}",
            probe_interval=0.2,
            probe_timeout=1.0,
            operation_timeout=2.0,
        )
    store.configure_history(HistoryConfig(rooms_enabled=False, users_enabled=False))
    return store


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder(reach=3)


@pytest.fixture
async def store(
    backend: str, request: pytest.FixtureRequest, recorder: Recorder
) -> AsyncIterator[Store]:
    started = make_store(backend, request)
    await started.start(recorder.deliver, recorder.on_gap)
    try:
        yield started
    finally:
        await started.stop()


# ------------------------------------------------------------------ lifecycle


async def test_is_a_store_and_ready_only_while_started(
    backend: str, request: pytest.FixtureRequest
) -> None:
    store = make_store(backend, request)
    recorder = Recorder()
    assert isinstance(store, Store)
    assert await store.ready() is False
    await store.start(recorder.deliver, recorder.on_gap)
    assert await store.ready() is True
    await store.stop()
    assert await store.ready() is False
    await store.stop()  # a second stop is harmless
    assert await store.ready() is False


async def test_publish_before_start_raises_runtime_error(
    backend: str, request: pytest.FixtureRequest
) -> None:
    store = make_store(backend, request)
    with pytest.raises(RuntimeError, match="not started"):
        await store.publish(Envelope("broadcast", None, "{}"))


async def test_node_id_is_a_non_empty_string_unique_per_store(
    backend: str, request: pytest.FixtureRequest
) -> None:
    first, second = make_store(backend, request), make_store(backend, request)
    assert isinstance(first.node_id, str) and first.node_id
    assert first.node_id != second.node_id


# ------------------------------------------------------------------ publish


async def test_publish_delivers_locally_exactly_once(store: Store, recorder: Recorder) -> None:
    envelope = Envelope("user", "alice", '{"type":"chat","text":"hi"}')
    result = await store.publish(envelope)
    assert result == PublishResult(local=3, remote_nodes=0)
    assert recorder.envelopes == [envelope]


async def test_publish_binary_payload_and_exclusions_reach_deliver_unchanged(
    store: Store, recorder: Recorder
) -> None:
    envelope = Envelope(
        "room",
        "lobby",
        b"\x00\xffbinary\n",
        exclude_users=frozenset({"bob"}),
        exclude_connections=frozenset({"c9"}),
    )
    await store.publish(envelope)
    assert recorder.envelopes == [envelope]


async def test_stats_name_the_backend_and_node_and_count_publishes(
    store: Store, backend: str
) -> None:
    before = store.stats()
    assert before["backend"] == backend.removesuffix("-cluster")
    assert before["node_id"] == store.node_id
    await store.publish(Envelope("broadcast", None, "a"))
    await store.publish(Envelope("connection", "c1", "b"))
    assert store.stats()["published"] == before["published"] + 2


# ------------------------------------------------------------------ connections and limits


async def test_limit_admits_up_to_max_then_refuses(store: Store) -> None:
    admitted = [await store.add_connection(f"c{i}", "alice", 3) for i in range(5)]
    assert admitted == [True, True, True, False, False]


async def test_no_limit_admits_any_number(store: Store) -> None:
    assert all([await store.add_connection(f"c{i}", "alice", None) for i in range(20)])
    assert await store.online_users() == {"alice"}


async def test_limit_zero_refuses_and_counts_nothing(store: Store) -> None:
    assert await store.add_connection("c1", "alice", 0) is False
    assert await store.online_users() == set()


async def test_limits_are_per_user(store: Store) -> None:
    assert await store.add_connection("a1", "alice", 1) is True
    assert await store.add_connection("b1", "bob", 1) is True
    assert await store.add_connection("a2", "alice", 1) is False


async def test_remove_frees_a_slot(store: Store) -> None:
    assert await store.add_connection("c1", "alice", 1)
    assert not await store.add_connection("c2", "alice", 1)
    await store.remove_connection("c1", "alice")
    assert await store.add_connection("c2", "alice", 1)


async def test_remove_of_unknown_or_other_users_connection_changes_nothing(store: Store) -> None:
    assert await store.add_connection("c1", "alice", 1)
    await store.remove_connection("nope", "alice")
    await store.remove_connection("c1", "bob")
    await store.remove_connection("c1", "nobody")
    assert await store.online_users() == {"alice"}
    assert not await store.add_connection("c2", "alice", 1)


async def test_online_users_follow_adds_and_removes(store: Store) -> None:
    assert await store.online_users() == set()
    await store.add_connection("a1", "alice", None)
    await store.add_connection("a2", "alice", None)
    await store.add_connection("b1", "bob", None)
    assert await store.online_users() == {"alice", "bob"}
    await store.remove_connection("a1", "alice")
    assert await store.online_users() == {"alice", "bob"}
    await store.remove_connection("a2", "alice")
    assert await store.online_users() == {"bob"}


async def test_re_adding_a_counted_connection_at_the_limit_is_refused(store: Store) -> None:
    assert await store.add_connection("c1", "alice", 1)
    assert await store.add_connection("c1", "alice", 1) is False
    assert await store.add_connection("c1", "alice", 2) is True
    await store.remove_connection("c1", "alice")
    assert await store.online_users() == set()


# ------------------------------------------------------------------ rooms


async def test_join_and_leave_shape_room_members(store: Store) -> None:
    assert await store.room_members("lobby") == {}
    await store.join_room("lobby", "c1", "alice")
    await store.join_room("lobby", "c2", "bob")
    await store.join_room("other", "c3", "carol")
    assert await store.room_members("lobby") == {"c1": "alice", "c2": "bob"}
    assert await store.room_members("other") == {"c3": "carol"}
    await store.leave_room("lobby", "c1")
    assert await store.room_members("lobby") == {"c2": "bob"}
    await store.leave_room("lobby", "c2")
    assert await store.room_members("lobby") == {}


async def test_leave_of_unknown_room_or_connection_changes_nothing(store: Store) -> None:
    await store.join_room("lobby", "c1", "alice")
    await store.leave_room("lobby", "c9")
    await store.leave_room("nowhere", "c1")
    assert await store.room_members("lobby") == {"c1": "alice"}


async def test_joining_again_replaces_the_user(store: Store) -> None:
    await store.join_room("lobby", "c1", "alice")
    await store.join_room("lobby", "c1", "alice")
    assert await store.room_members("lobby") == {"c1": "alice"}
    await store.join_room("lobby", "c1", "bob")
    assert await store.room_members("lobby") == {"c1": "bob"}


async def test_room_members_is_a_copy(store: Store) -> None:
    await store.join_room("lobby", "c1", "alice")
    members = await store.room_members("lobby")
    members["c2"] = "mallory"
    assert await store.room_members("lobby") == {"c1": "alice"}


async def test_removing_a_connection_leaves_its_rooms_to_leave_room(store: Store) -> None:
    await store.add_connection("c1", "alice", None)
    await store.join_room("lobby", "c1", "alice")
    await store.remove_connection("c1", "alice")
    assert await store.room_members("lobby") == {"c1": "alice"}


@pytest.mark.parametrize(
    ("room", "connection", "user"),
    [
        ("a:b", "c:1", "u:2"),
        ("5:room", "3:abc", "7:"),
        ("line\nbreak", "tab\tid", "späce ünïcode ☃"),
        ("", "c", "u"),
    ],
)
async def test_ids_with_separators_and_unicode_round_trip(
    store: Store, room: str, connection: str, user: str
) -> None:
    await store.join_room(room, connection, user)
    assert await store.room_members(room) == {connection: user}
    assert await store.add_connection(connection, user, 1)
    assert await store.online_users() == {user}
    assert not await store.add_connection(connection + "x", user, 1)
    await store.remove_connection(connection, user)
    await store.leave_room(room, connection)
    assert await store.online_users() == set()
    assert await store.room_members(room) == {}


# ------------------------------------------------------------------ nodes and sessions


async def test_nodes_lists_this_node(store: Store) -> None:
    nodes = await store.nodes()
    assert [node["node_id"] for node in nodes] == [store.node_id]
    assert isinstance(nodes[0]["last_seen"], float)
    assert nodes[0]["started_at"] <= nodes[0]["last_seen"]


async def test_sessions_save_and_restore_state_after_start(store: Store) -> None:
    sessions = store.sessions
    first = await sessions.create_connection("session-1", "alice", "Alice")
    assert await sessions.save_connection_state(first, {"rooms": ["lobby"]})
    assert await sessions.disconnect(first, save_state=True)
    second = await sessions.create_connection("session-1", "alice", "Alice")
    assert await sessions.restore_connection_state(second) == {"rooms": ["lobby"]}


# ------------------------------------------------------------------ revocations


async def test_revocations_are_remembered_until_their_end(store: Store) -> None:
    now = time.time()
    assert await store.revoked(["user:a", "token:jti:x"]) == [None, None]
    await store.revoke("user:a", now, now + 60)
    await store.revoke("token:jti:x", now - 5, now + 0.3)
    assert await store.revoked(["user:a", "token:jti:x", "user:b"]) == [now, now - 5, None]
    # A later revocation of the same subject moves its time forward.
    await store.revoke("user:a", now + 1, now + 61)
    assert await store.revoked(["user:a"]) == [now + 1]
    async with asyncio.timeout(5):
        while (await store.revoked(["token:jti:x"]))[0] is not None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert await store.revoked(["user:a"]) == [now + 1]
