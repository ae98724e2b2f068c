"""WebSocketSessionManager: one behavioural suite, run against memory and a real redis-server.

Tests taking ``store`` run once per backend. Tests about several nodes sharing one store, and
about Redis connection errors, exist only for Redis (a memory store is one process by design).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from netrun_ws import WebSocketSessionManager
from netrun_ws.session import SessionStoreError, WebSocketConnection
from netrun_ws.session_backends import MemorySessionBackend
from tests.support.manual_time import ManualTime
from tests.support.redis_server import RedisServer, shared_redis_server

pytestmark = pytest.mark.timeout(60)

REPO_ROOT = Path(__file__).resolve().parents[2]

BOUND = 10.0  # seconds: no single store call in these tests may take longer


#: Where the manual clocks start: the manager's timestamps are seconds since the epoch.
EPOCH_NOW = 1_700_000_000.0


class Store:
    """One backend under test: builds managers on it and inspects what it holds."""

    def __init__(self, kind: str, server: RedisServer | None) -> None:
        self.kind = kind
        self.server = server
        self.prefix = f"test_{uuid.uuid4().hex[:12]}"
        self.managers: list[WebSocketSessionManager] = []
        self._raw: aioredis.Redis | None = None

    def manager(self, **kwargs: Any) -> WebSocketSessionManager:
        """A new manager; with Redis, every manager of this store shares its keys (a node)."""
        if self.server is not None:
            kwargs.setdefault("redis_url", self.server.url)
            kwargs.setdefault("key_prefix", self.prefix)
        manager = WebSocketSessionManager(**kwargs)
        self.managers.append(manager)
        return manager

    def observer(self, manager: WebSocketSessionManager) -> WebSocketSessionManager:
        """A manager that sees ``manager``'s entries: itself in memory, a new node with Redis."""
        return manager if self.server is None else self.manager()

    async def stored_entries(self, manager: WebSocketSessionManager) -> int:
        """Entries the store holds: Redis keys under the prefix (SCAN) / the memory dicts."""
        if self.server is None:
            backend = manager._backend
            assert isinstance(backend, MemorySessionBackend)
            return backend.stored_entries()
        return len(await self.keys())

    async def keys(self) -> list[str]:
        raw = self._raw_client()
        return sorted([key async for key in raw.scan_iter(match=f"{self.prefix}:*")])

    async def let_pass(self, clock: ManualTime, seconds: float) -> None:
        """Let ``seconds`` pass for the entries of the managers on ``clock``.

        In memory, entries expire by the managers' clock, so moving it is all. Redis expires keys
        by its own clock, which a test cannot move: every key's remaining TTL is shortened by
        ``seconds`` instead, and the keys it would have expired are deleted, leaving what Redis
        would hold had the time passed. A key without a TTL stays, as it would in Redis.
        """
        clock.advance(seconds)
        if self.server is None:
            return
        raw = self._raw_client()
        for key in await self.keys():
            remaining = await raw.pttl(key)
            if remaining < 0:  # -1: no TTL, -2: gone meanwhile
                continue
            left = remaining - round(seconds * 1000)
            if left > 0:
                await raw.pexpire(key, left)
            else:
                await raw.delete(key)

    def _raw_client(self) -> aioredis.Redis:
        assert self.server is not None
        if self._raw is None:
            self._raw = aioredis.Redis.from_url(self.server.url, decode_responses=True)
        return self._raw

    async def close(self) -> None:
        for manager in self.managers:
            await manager.close()
        if self._raw is not None:
            await self._raw.aclose()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    server = shared_redis_server() if request.param == "redis" else None
    harness = Store(request.param, server)
    yield harness
    await harness.close()


@pytest.fixture
async def redis_store() -> AsyncIterator[Store]:
    harness = Store("redis", shared_redis_server())
    yield harness
    await harness.close()


async def bounded(awaitable: Any) -> Any:
    return await asyncio.wait_for(awaitable, BOUND)


# ------------------------------------------------------------------------------------ basics


async def test_create_and_get_connection(store: Store) -> None:
    clock = ManualTime(EPOCH_NOW)
    manager = store.manager(clock=clock)
    await manager.initialize()
    await manager.initialize()  # idempotent
    metadata = {"room": "lobby", "tags": [], "nested": {"n": 1.5}}
    cid = await manager.create_connection("sess-1", "user-1", "Alice", metadata)

    assert uuid.UUID(cid).version == 4
    # A record equals any mapping with its items (the type checker sees no __eq__ on it).
    record: Mapping[str, Any] | None = await manager.get_connection(cid)
    assert record == {
        "connection_id": cid,
        "session_id": "sess-1",
        "user_id": "user-1",
        "username": "Alice",
        "metadata": metadata,
        "connected_at": clock.now,
        "last_heartbeat": clock.now,
        "state": "connected",
        "client_ip": None,
        "user_agent": None,
        "tab_id": None,
    }


async def test_connection_ids_are_unique(store: Store) -> None:
    manager = store.manager()
    ids = {await manager.create_connection("s", "u", "n") for _ in range(20)}
    assert len(ids) == 20


async def test_methods_initialise_on_first_use(store: Store) -> None:
    manager = store.manager()  # no initialize(): netrun-websocket allowed that
    cid = await manager.create_connection("s", "u", "n")
    assert (await manager.get_connection(cid)) is not None


async def test_compat_client_fields_are_kept(store: Store) -> None:
    manager = store.manager()
    cid = await manager.create_connection(
        "s", "u", "n", client_ip="10.0.0.1", user_agent="pytest", tab_id="tab-2"
    )
    info = await manager.get_connection(cid)
    assert info is not None
    assert (info["client_ip"], info["user_agent"], info["tab_id"]) == (
        "10.0.0.1",
        "pytest",
        "tab-2",
    )


async def test_get_connection_is_a_websocket_connection_with_dict_access(store: Store) -> None:
    clock = ManualTime(EPOCH_NOW)
    manager = store.manager(clock=clock)
    cid = await manager.create_connection(
        "sess-1", "u", "Ann", {"room": "a"}, client_ip="10.0.0.2", tab_id="t"
    )
    record = await manager.get_connection(cid)
    assert isinstance(record, WebSocketConnection)
    # netrun-websocket 1.0's attribute access ...
    assert (record.connection_id, record.session_id, record.user_id) == (cid, "sess-1", "u")
    assert (record.username, record.client_ip, record.tab_id) == ("Ann", "10.0.0.2", "t")
    assert record.user_agent is None and record.metadata == {"room": "a"}
    # 1.0's times are ISO 8601 strings in UTC; the dict view keeps netrun-ws's exact epochs.
    iso_now = datetime.fromtimestamp(clock.now, UTC).isoformat(timespec="microseconds")
    assert record.connected_at == record.last_heartbeat == iso_now
    assert record["connected_at"] == record["last_heartbeat"] == clock.now
    # ... and netrun-ws's dict access, on the same object.
    assert record["user_id"] == "u" and record.get("tab_id") == "t" and "state" in record
    assert record.to_dict() == dict(record) and json.loads(json.dumps(record.to_dict()))
    with pytest.raises(KeyError):
        record["websocket"]
    with pytest.raises(AttributeError):
        record.user_id = "other"  # type: ignore[misc]


async def test_get_session_connections(store: Store) -> None:
    clock = ManualTime(EPOCH_NOW)
    manager = store.manager(clock=clock)
    first = await manager.create_connection("shared", "u", "Ann", tab_id="t1")
    clock.advance(1)
    second = await manager.create_connection("shared", "u", "Ann", tab_id="t2")
    await manager.create_connection("other", "u", "Ann")
    found = await manager.get_session_connections("shared")
    assert [record.connection_id for record in found] == [first, second]
    assert all(isinstance(record, WebSocketConnection) for record in found)
    assert [record.tab_id for record in found] == ["t1", "t2"]
    await manager.disconnect(first)
    assert [r.connection_id for r in await manager.get_session_connections("shared")] == [second]
    assert await manager.get_session_connections("nobody") == []
    with pytest.raises(ValueError, match="session_id"):
        await manager.get_session_connections("")


async def test_metadata_is_stored_as_json_and_copied(store: Store) -> None:
    manager = store.manager()
    metadata: dict[Any, Any] = {"pair": (1, 2), 7: "seven", "list": [1]}
    cid = await manager.create_connection("s", "u", "n", metadata)
    metadata["list"].append(2)  # the caller's later changes are not stored
    first = await manager.get_connection(cid)
    assert first is not None
    first["metadata"]["pair"].append(3)  # nor changes to a returned copy
    again = await manager.get_connection(cid)
    assert again is not None
    assert again["metadata"] == {"pair": [1, 2], "7": "seven", "list": [1]}


async def test_unknown_connection_ids(store: Store) -> None:
    manager = store.manager()
    unknown = str(uuid.uuid4())
    assert await manager.get_connection(unknown) is None
    assert await manager.update_heartbeat(unknown) is False
    assert await manager.save_connection_state(unknown, {"a": 1}) is False
    assert await manager.restore_connection_state(unknown) is None
    assert await manager.disconnect(unknown) is False
    assert await manager.get_user_connections("nobody") == []
    assert await manager.count_user_connections("nobody") == 0


async def test_update_heartbeat_moves_last_heartbeat(store: Store) -> None:
    clock = ManualTime(EPOCH_NOW)
    manager = store.manager(clock=clock)
    cid = await manager.create_connection("s", "u", "n")
    connected_at = clock.now
    clock.advance(12.5)
    assert await manager.update_heartbeat(cid) is True
    info = await manager.get_connection(cid)
    assert info is not None
    assert info["connected_at"] == connected_at
    assert info["last_heartbeat"] == connected_at + 12.5


async def test_disconnect_removes_the_connection_once(store: Store) -> None:
    manager = store.manager()
    cid = await manager.create_connection("s", "u", "n")
    other = await manager.create_connection("s2", "u", "n")
    assert await manager.disconnect(cid) is True
    assert await manager.disconnect(cid) is False
    assert await manager.get_connection(cid) is None
    assert await manager.update_heartbeat(cid) is False
    assert await manager.get_user_connections("u") == [other]


async def test_user_connections_and_count(store: Store) -> None:
    manager = store.manager()
    alice = [await manager.create_connection(f"s{i}", "alice", "Alice") for i in range(3)]
    bob = await manager.create_connection("sb", "bob", "Bob")
    assert await manager.get_user_connections("alice") == sorted(alice)
    assert await manager.count_user_connections("alice") == 3
    assert await manager.get_user_connections("bob") == [bob]
    await manager.disconnect(alice[0])
    assert await manager.count_user_connections("alice") == 2


# ------------------------------------------------------------------------------------ state


async def test_state_belongs_to_the_session(store: Store) -> None:
    manager = store.manager()
    first = await manager.create_connection("sess-A", "u", "n")
    assert await manager.restore_connection_state(first) is None
    state = {"conversation_id": "c-1", "recent": [{"id": 1}], "draft": None}
    assert await manager.save_connection_state(first, state) is True
    assert await manager.restore_connection_state(first) == state

    assert await manager.disconnect(first, save_state=True) is True
    again = await manager.create_connection("sess-A", "u", "n")
    assert await manager.restore_connection_state(again) == state
    elsewhere = await manager.create_connection("sess-B", "u", "n")
    assert await manager.restore_connection_state(elsewhere) is None


async def test_merged_open_and_close_calls_keep_the_session_to_its_owner(store: Store) -> None:
    # claim_and_create and save_and_disconnect are claim + create and claim + save + disconnect
    # in one backend call each (the memory store's open and close of a connection).
    manager = store.manager()
    first = await manager.claim_and_create("sess-M", "ann", "Ann")
    assert first is not None
    assert await manager.claim_and_create("sess-M", "bob", "Bob") is None  # not bob's
    assert await manager.get_user_connections("bob") == []
    assert await manager.save_and_disconnect(first, "sess-M", "ann", {"v": 1}) is True
    assert await manager.get_connection(first) is None
    again = await manager.claim_and_create("sess-M", "ann", "Ann")
    assert again is not None
    assert await manager.restore_connection_state(again) == {"v": 1}
    # Another user's close saves nothing, and still disconnects the connection it names.
    assert await manager.save_and_disconnect(again, "sess-M", "bob", {"v": 2}) is False
    assert await manager.get_connection(again) is None
    last = await manager.claim_and_create("sess-M", "ann", "Ann")
    assert last is not None
    assert await manager.restore_connection_state(last) == {"v": 1}


async def test_later_save_replaces_state(store: Store) -> None:
    manager = store.manager()
    cid = await manager.create_connection("s", "u", "n")
    await manager.save_connection_state(cid, {"v": 1})
    await manager.save_connection_state(cid, {"v": 2})
    restored = await manager.restore_connection_state(cid)
    assert restored == {"v": 2}
    restored["v"] = 3  # a returned state is a copy
    assert await manager.restore_connection_state(cid) == {"v": 2}


async def test_disconnect_without_saving_deletes_state(store: Store) -> None:
    manager = store.manager()
    cid = await manager.create_connection("sess", "u", "n")
    await manager.save_connection_state(cid, {"keep": False})
    assert await manager.disconnect(cid, save_state=False) is True
    again = await manager.create_connection("sess", "u", "n")
    assert await manager.restore_connection_state(again) is None
    assert (await manager.get_connection_stats())["sessions_with_saved_state"] == 0


# ------------------------------------------------------------------------------------ staleness


async def test_cleanup_removes_only_stale_connections(store: Store) -> None:
    clock = ManualTime(EPOCH_NOW)
    manager = store.manager(clock=clock, heartbeat_interval=30, heartbeat_timeout=90)
    stale = [await manager.create_connection(f"s{i}", "u", "n") for i in range(2)]
    fresh = await manager.create_connection("s-fresh", "u", "n")
    await manager.save_connection_state(stale[0], {"resume": True})
    clock.advance(60)
    assert await manager.update_heartbeat(fresh)
    clock.advance(30)  # stale ones exactly at the timeout: not yet stale
    assert await manager.cleanup_stale_connections() == 0
    clock.advance(0.5)

    stats = await manager.get_connection_stats()
    assert (stats["active_connections"], stats["stale_connections"]) == (1, 2)
    assert await manager.cleanup_stale_connections() == 2
    assert await manager.cleanup_stale_connections() == 0
    assert [await manager.get_connection(cid) for cid in stale] == [None, None]
    assert await manager.get_user_connections("u") == [fresh]
    # A stale connection's client may come back: its session's state is kept.
    back = await manager.create_connection("s0", "u", "n")
    assert await manager.restore_connection_state(back) == {"resume": True}


async def test_stats(store: Store) -> None:
    clock = ManualTime(EPOCH_NOW)
    manager = store.manager(clock=clock, heartbeat_interval=5, heartbeat_timeout=10)
    empty = await manager.get_connection_stats()
    assert empty["total_connections"] == 0
    a1 = await manager.create_connection("s1", "alice", "A")
    await manager.create_connection("s1", "alice", "A")
    clock.advance(11)
    b = await manager.create_connection("s2", "bob", "B")
    await manager.save_connection_state(a1, {"x": 1})
    await manager.save_connection_state(b, {"y": 2})

    stats = await manager.get_connection_stats()
    assert stats == {
        "backend": store.kind,
        "total_connections": 3,
        "active_connections": 1,
        "stale_connections": 2,
        "unique_users": 2,
        "unique_sessions": 2,
        "sessions_with_saved_state": 2,
        "redis_connected": store.kind == "redis",
        "heartbeat_interval_seconds": 5,
        "heartbeat_timeout_seconds": 10,
        "connection_ttl_seconds": 3600,
    }


# ------------------------------------------------------------------------------------ TTL


async def test_dead_managers_entries_expire(store: Store) -> None:
    clock = ManualTime(EPOCH_NOW)
    dead = store.manager(connection_ttl=60, clock=clock)
    cid = await dead.create_connection("sess", "zoe", "Zoe")
    await dead.save_connection_state(cid, {"x": 1})
    assert await store.stored_entries(dead) > 0
    # "dead" is now abandoned: no disconnect, no heartbeat.
    await store.let_pass(clock, 50)
    assert await dead.get_connection(cid) is not None
    await store.let_pass(clock, 10)

    observer = store.observer(dead)
    assert await observer.get_connection(cid) is None
    assert await observer.count_user_connections("zoe") == 0
    stats = await observer.get_connection_stats()
    assert (stats["total_connections"], stats["sessions_with_saved_state"]) == (0, 0)
    assert await store.stored_entries(dead) == 0


async def test_heartbeats_keep_a_connection_past_its_ttl(store: Store) -> None:
    clock = ManualTime(EPOCH_NOW)
    manager = store.manager(
        connection_ttl=50, heartbeat_interval=10, heartbeat_timeout=50, clock=clock
    )
    cid = await manager.create_connection("s", "u", "n")
    for _ in range(8):  # 80 s in all, past the TTL
        await store.let_pass(clock, 10)
        assert await manager.update_heartbeat(cid) is True
    assert await manager.get_connection(cid) is not None
    assert await manager.get_user_connections("u") == [cid]
    await store.let_pass(clock, 50)  # then silence for a whole TTL
    assert await manager.get_connection(cid) is None


async def test_saved_state_lives_connection_ttl_after_disconnect(store: Store) -> None:
    clock = ManualTime(EPOCH_NOW)
    manager = store.manager(
        connection_ttl=80, heartbeat_interval=10, heartbeat_timeout=80, clock=clock
    )
    cid = await manager.create_connection("sess", "u", "n")
    await manager.save_connection_state(cid, {"n": 1})
    await store.let_pass(clock, 45)
    await manager.update_heartbeat(cid)
    await manager.disconnect(cid, save_state=True)  # restarts the state's TTL
    await store.let_pass(clock, 50)  # 95 s after the save, 50 s after the disconnect
    back = await manager.create_connection("sess", "u", "n")
    assert await manager.restore_connection_state(back) == {"n": 1}
    await store.let_pass(clock, 90)
    later = await manager.create_connection("sess", "u", "n")
    assert await manager.restore_connection_state(later) is None


# ------------------------------------------------------------------------------------ concurrency


@pytest.mark.parametrize("save_state", [False, True])
async def test_concurrent_creates_and_disconnects_leave_nothing(
    store: Store, save_state: bool
) -> None:
    manager = store.manager()
    creates = [manager.create_connection(f"s{i % 25}", f"u{i % 7}", "n") for i in range(120)]
    ids = await bounded(asyncio.gather(*creates))
    assert len(set(ids)) == 120
    await bounded(asyncio.gather(*(manager.save_connection_state(c, {"c": c}) for c in ids)))
    assert (await manager.get_connection_stats())["total_connections"] == 120

    # Every id disconnected twice at once: exactly one call removes it.
    doubled = [manager.disconnect(c, save_state=save_state) for c in ids + ids]
    results = await bounded(asyncio.gather(*doubled))
    assert sum(results) == 120

    stats = await manager.get_connection_stats()
    assert (stats["total_connections"], stats["unique_users"]) == (0, 0)
    remaining = await store.stored_entries(manager)
    assert remaining == (25 if save_state else 0)  # only the sessions' saved states
    if store.kind == "redis":
        expected = sorted(f"{store.prefix}:state:s{i}" for i in range(25)) if save_state else []
        assert await store.keys() == expected


async def test_concurrent_cleanup_counts_each_stale_connection_once(store: Store) -> None:
    clock = ManualTime(EPOCH_NOW)
    manager = store.manager(clock=clock)
    for i in range(30):
        await manager.create_connection(f"s{i}", "u", "n")
    clock.advance(manager.heartbeat_timeout + 1)
    counts = await bounded(asyncio.gather(*(manager.cleanup_stale_connections() for _ in range(4))))
    assert sum(counts) == 30
    assert await store.stored_entries(manager) == 0


# ------------------------------------------------------------------------------------ validation

_BAD_CONSTRUCTOR_ARGS: list[tuple[dict[str, Any], str]] = [
    ({"connection_ttl": 0}, "connection_ttl"),
    ({"connection_ttl": -5}, "connection_ttl"),
    ({"connection_ttl": math.inf}, "connection_ttl"),
    ({"connection_ttl": "3600"}, "connection_ttl"),
    ({"heartbeat_interval": 0}, "heartbeat_interval"),
    ({"heartbeat_timeout": -1}, "heartbeat_timeout"),
    ({"heartbeat_timeout": True}, "heartbeat_timeout"),
    ({"heartbeat_interval": 60, "heartbeat_timeout": 30}, "heartbeat_timeout"),
    ({"operation_timeout": 0}, "operation_timeout"),
    ({"key_prefix": ""}, "key_prefix"),
    ({"key_prefix": "has space"}, "key_prefix"),
    ({"key_prefix": "glob*"}, "key_prefix"),
    ({"clock": 12}, "clock"),
    ({"redis_url": "http://127.0.0.1:6379"}, "redis_url"),
    ({"redis_url": ""}, "redis_url"),
    ({"redis_url": "redis://x", "redis_client": object()}, "redis_client or redis_url"),
]


@pytest.mark.parametrize(("kwargs", "named"), _BAD_CONSTRUCTOR_ARGS)
def test_bad_constructor_arguments(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        WebSocketSessionManager(**kwargs)


def test_bad_redis_url_does_not_echo_its_password() -> None:
    with pytest.raises(ValueError, match="redis_url") as caught:
        WebSocketSessionManager(redis_url="http://user:hunter2@cache:6379")
    assert "hunter2" not in str(caught.value)


_BAD_CALLS: list[tuple[str, tuple[Any, ...], str]] = [
    ("create_connection", ("", "u", "n"), "session_id"),
    ("create_connection", ("s", None, "n"), "user_id"),
    ("create_connection", ("s", "u", 5), "username"),
    ("create_connection", ("s" * 513, "u", "n"), "session_id"),
    ("create_connection", ("s", "u", "n", ["not", "a", "dict"]), "metadata"),
    ("create_connection", ("s", "u", "n", {"x": object()}), "metadata"),
    ("create_connection", ("s", "u", "n", {"x": math.nan}), "metadata"),
    ("get_connection", ("",), "connection_id"),
    ("update_heartbeat", (None,), "connection_id"),
    ("disconnect", (42,), "connection_id"),
    ("restore_connection_state", (b"bytes",), "connection_id"),
    ("get_user_connections", ("",), "user_id"),
    ("count_user_connections", (None,), "user_id"),
]


@pytest.mark.parametrize(("method", "args", "named"), _BAD_CALLS)
async def test_bad_method_arguments(
    store: Store, method: str, args: tuple[Any, ...], named: str
) -> None:
    manager = store.manager()
    with pytest.raises(ValueError, match=named):
        await getattr(manager, method)(*args)
    assert await store.stored_entries(manager) == 0  # nothing half-written


@pytest.mark.parametrize("state", [["a", "list"], {"f": object()}, {"v": math.inf}])
async def test_bad_state_is_refused(store: Store, state: Any) -> None:
    manager = store.manager()
    cid = await manager.create_connection("s", "u", "n")
    with pytest.raises(ValueError, match="state"):
        await manager.save_connection_state(cid, state)
    assert await manager.restore_connection_state(cid) is None


# ------------------------------------------------------------------------------------ lifecycle


async def test_close_then_use_again(store: Store) -> None:
    manager = store.manager()
    async with manager as opened:
        assert opened is manager
        cid = await manager.create_connection("s", "u", "n")
    # Closed: the next call initialises again and sees the same store.
    assert await manager.get_connection(cid) is not None


def test_backend_choice() -> None:
    assert WebSocketSessionManager().backend_name == "memory"
    assert WebSocketSessionManager().redis_client is None
    redis_manager = WebSocketSessionManager(redis_url="redis://:pw@127.0.0.1:6379/0")
    assert redis_manager.backend_name == "redis"
    assert "pw@" not in repr(redis_manager)
    assert "redis://:***@127.0.0.1:6379/0" in repr(redis_manager)


def test_core_import_works_without_redis() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from netrun_ws.session import WebSocketSessionManager\n"
        "assert WebSocketSessionManager().backend_name == 'memory'\n"
        "try:\n"
        "    WebSocketSessionManager(redis_url='redis://127.0.0.1:6379/0')\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'netrun-ws[redis]'" in result.stdout


# ------------------------------------------------------------------------------------ Redis only


async def test_two_nodes_share_connections_and_state(redis_store: Store) -> None:
    node_a, node_b = redis_store.manager(), redis_store.manager()
    on_a = await node_a.create_connection("sess-x", "carol", "Carol", {"node": "a"})
    on_b = await node_b.create_connection("sess-y", "carol", "Carol")
    await node_a.save_connection_state(on_a, {"cursor": 42})

    info = await node_b.get_connection(on_a)
    assert info is not None and info["metadata"] == {"node": "a"}
    assert await node_a.count_user_connections("carol") == 2  # cluster-wide
    assert await node_b.get_user_connections("carol") == sorted([on_a, on_b])

    # The client reconnects to node B with the same session id: node A's saved state.
    await node_a.disconnect(on_a, save_state=True)
    resumed = await node_b.create_connection("sess-x", "carol", "Carol")
    assert await node_b.restore_connection_state(resumed) == {"cursor": 42}
    assert await node_b.update_heartbeat(on_a) is False
    assert await node_a.disconnect(on_b) is True  # any node may disconnect any connection
    assert await node_b.get_user_connections("carol") == [resumed]


async def test_two_nodes_cleaning_up_at_once(redis_store: Store) -> None:
    clock = ManualTime(EPOCH_NOW)
    node_a, node_b = redis_store.manager(clock=clock), redis_store.manager(clock=clock)
    for i in range(20):
        await (node_a if i % 2 else node_b).create_connection(f"s{i}", f"u{i}", "n")
    clock.advance(91)
    survivor = await node_b.create_connection("late", "u-late", "n")
    counts = await bounded(
        asyncio.gather(node_a.cleanup_stale_connections(), node_b.cleanup_stale_connections())
    )
    assert sum(counts) == 20
    assert await redis_store.keys() == sorted(
        [
            f"{redis_store.prefix}:conn:{survivor}",
            f"{redis_store.prefix}:heartbeats",
            f"{redis_store.prefix}:user:u-late",
        ]
    )


async def test_redis_keys_have_ttls(redis_store: Store) -> None:
    manager = redis_store.manager(connection_ttl=120)
    cid = await manager.create_connection("s", "u", "n")
    await manager.save_connection_state(cid, {"x": 1})
    raw = aioredis.Redis.from_url(redis_store.server.url if redis_store.server else "")
    try:
        keys = await redis_store.keys()
        assert len(keys) == 4
        for key in keys:
            ttl = await raw.pttl(key)
            assert 0 < ttl <= 120_000, key
    finally:
        await raw.aclose()


async def test_callers_client_is_used_and_left_open(redis_store: Store) -> None:
    assert redis_store.server is not None
    client = aioredis.Redis.from_url(redis_store.server.url)  # bytes replies: also handled
    try:
        manager = WebSocketSessionManager(redis_client=client, key_prefix=redis_store.prefix)
        await manager.initialize()
        assert manager.redis_client is client
        cid = await manager.create_connection("s", "u", "n", {"k": "v"})
        await manager.save_connection_state(cid, {"s": 1})
        assert await manager.restore_connection_state(cid) == {"s": 1}
        assert await manager.get_user_connections("u") == [cid]
        assert (await manager.get_connection_stats())["total_connections"] == 1
        await manager.close()
        assert await client.ping() is True
    finally:
        await client.aclose()


async def test_unreachable_redis_names_url_without_password() -> None:
    port = RedisServer().port  # a free port nobody listens on
    url = f"redis://admin:s3cr3t-pw@127.0.0.1:{port}/2"
    manager = WebSocketSessionManager(redis_url=url, operation_timeout=2)
    started = time.monotonic()
    with pytest.raises(SessionStoreError) as caught:
        await bounded(manager.initialize())
    assert time.monotonic() - started < 3
    message = str(caught.value)
    assert f"redis://admin:***@127.0.0.1:{port}/2" in message
    assert "s3cr3t-pw" not in message
    assert isinstance(caught.value, ConnectionError)
    # Still down: the next call fails the same way instead of hanging.
    with pytest.raises(SessionStoreError, match=r"\*\*\*"):
        await bounded(manager.create_connection("s", "u", "n"))


async def test_password_in_query_is_masked_too() -> None:
    port = RedisServer().port
    manager = WebSocketSessionManager(
        redis_url=f"redis://127.0.0.1:{port}/0?password=qwerty-9", operation_timeout=2
    )
    with pytest.raises(SessionStoreError) as caught:
        await bounded(manager.initialize())
    assert "qwerty-9" not in str(caught.value)
    assert "password=%2A%2A%2A" in str(caught.value)


async def test_wrong_password_is_reported_without_it() -> None:
    async with RedisServer(password="right-horse") as server:
        good = WebSocketSessionManager(redis_url=server.url)
        await good.initialize()
        await good.close()
        bad_url = server.url.replace("right-horse", "wrong-battery")
        manager = WebSocketSessionManager(redis_url=bad_url, operation_timeout=2)
        with pytest.raises(SessionStoreError) as caught:
            await bounded(manager.initialize())
        message = str(caught.value)
        assert "wrong-battery" not in message and "right-horse" not in message
        assert "redis://:***@127.0.0.1" in message


async def test_connection_ids_are_uuid4_strings() -> None:
    import uuid

    manager = WebSocketSessionManager()
    ids = [await manager.create_connection("s", "u", "name") for _ in range(200)]
    assert len(set(ids)) == 200
    for value in ids:
        parsed = uuid.UUID(value)
        assert (str(parsed), parsed.version) == (value, 4)
