"""A connection's open and close as one store call each (``ConnectionRecords``): the memory
store's own, and the ones built from the ``Store`` calls (``StoreCalls``, for any other store,
here over memory and Redis), answer alike."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from netrun_ws.builtin.store_memory import MemoryStore
from netrun_ws.config import HistoryConfig
from netrun_ws.redis.store import RedisStore
from netrun_ws.runtime.connection_records import StoreCalls, records_of
from netrun_ws.session import WebSocketSessionManager
from netrun_ws.store import ConnectionRecords, Store
from tests.store import Recorder
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer

#: The stores' own merged calls, and StoreCalls over memory and Redis.
KINDS = ["memory", "redis", "redis-cluster", "memory-store-calls", "redis-store-calls"]


@pytest.fixture(params=KINDS)
async def stored(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Store, ConnectionRecords]]:
    kind: str = request.param
    store: MemoryStore | RedisStore
    if kind.startswith("redis"):
        cluster = kind == "redis-cluster"
        server: RedisServer | RedisCluster = request.getfixturevalue(
            "redis_cluster" if cluster else "shared_redis"
        )
        store = RedisStore(
            server.url, cluster=cluster, key_prefix=f"records-{uuid.uuid4().hex[:10]}"
        )
    else:
        store = MemoryStore()
    store.configure_history(HistoryConfig(rooms_enabled=False, users_enabled=False))
    recorder = Recorder()
    await store.start(recorder.deliver, recorder.on_gap)
    records = StoreCalls(store) if kind.endswith("store-calls") else records_of(store)
    assert (records is store) == (not kind.endswith("store-calls"))
    try:
        yield store, records
    finally:
        await store.stop()


async def test_open_registers_the_record_and_the_count(
    stored: tuple[Store, ConnectionRecords],
) -> None:
    store, records = stored
    store_id, refusal = await records.open_connection("s-1", "alice", "Alice", None, [])
    assert refusal is None and store_id is not None
    record = await store.sessions.get_connection(store_id)
    assert record is not None and (record.session_id, record.username) == ("s-1", "Alice")
    assert await store.online_users() == {"alice"}


async def test_close_saves_the_state_for_the_next_connection_and_releases_all(
    stored: tuple[Store, ConnectionRecords],
) -> None:
    store, records = stored
    first, _ = await records.open_connection("s-1", "alice", "alice", None, [])
    assert first is not None
    assert await records.close_connection(first, "s-1", "alice", {"data": {"n": 1}}) is True
    assert await store.sessions.get_connection(first) is None
    assert await store.online_users() == set()
    second, _ = await records.open_connection("s-1", "alice", "alice", None, [])
    assert second is not None
    assert await store.sessions.restore_connection_state(second) == {"data": {"n": 1}}


async def test_a_session_of_another_user_is_refused_and_not_saved_into(
    stored: tuple[Store, ConnectionRecords],
) -> None:
    store, records = stored
    alice, _ = await records.open_connection("s-1", "alice", "alice", None, [])
    assert await records.open_connection("s-1", "bob", "bob", None, []) == (
        None,
        "session_not_yours",
    )
    assert await store.sessions.get_user_connections("bob") == []
    bob, _ = await records.open_connection("s-2", "bob", "bob", None, [])
    assert alice is not None and bob is not None
    # bob's record, closed as if its session were alice's: nothing saved, still released
    assert await records.close_connection(bob, "s-1", "bob", {"data": {}}) is False
    assert await store.sessions.get_connection(bob) is None


async def test_the_user_limit_refuses_and_leaves_no_record(
    stored: tuple[Store, ConnectionRecords],
) -> None:
    store, records = stored
    assert (await records.open_connection("s-1", "alice", "alice", 1, []))[1] is None
    assert await records.open_connection("s-2", "alice", "alice", 1, []) == (None, "user_limit")
    assert len(await store.sessions.get_user_connections("alice")) == 1


async def test_revocations_refuse_by_issue_time_and_claim_nothing(
    stored: tuple[Store, ConnectionRecords],
) -> None:
    store, records = stored
    now = time.time()
    await store.revoke("user:alice", now, now + 60)
    await store.revoke("token:jti:t-1", now, now + 60)
    refused: list[list[tuple[str, float | None]]] = [
        [("user:alice", now - 10)],  # issued before the revocation
        [("user:alice", None)],  # no iat
        [("user:bob", None), ("token:jti:t-1", None)],  # a revoked token
    ]
    for checks in refused:
        assert await records.open_connection("s-1", "bob", "bob", None, checks) == (
            None,
            "revoked",
        )
    # nothing was claimed: the session is still free for anyone
    opened, refusal = await records.open_connection("s-1", "alice", "alice", None, [])
    assert refusal is None and opened is not None
    issued_after = [("user:alice", now + 10)]
    assert (await records.open_connection("s-2", "alice", "alice", None, issued_after))[1] is None


async def test_a_state_that_is_not_json_is_refused_after_releasing_everything(
    stored: tuple[Store, ConnectionRecords],
) -> None:
    store, records = stored
    store_id, _ = await records.open_connection("s-1", "alice", "alice", None, [])
    assert store_id is not None
    with pytest.raises(ValueError, match="JSON"):
        await records.close_connection(store_id, "s-1", "alice", {"data": {"bad": {1, 2}}})
    assert await store.sessions.get_connection(store_id) is None
    assert await store.online_users() == set()


# ------------------------------------------------------------------ which calls the host uses


class HeldCount(MemoryStore):
    async def add_connection(self, connection_id: str, user_id: str, limit: int | None) -> bool:
        return await super().add_connection(connection_id, user_id, limit)


class CustomSessions(WebSocketSessionManager):
    async def claim_session(self, session_id: str, user_id: str) -> bool:
        return await super().claim_session(session_id, user_id)


def test_the_built_in_stores_make_their_own_merged_calls() -> None:
    store = MemoryStore()
    assert records_of(store) is store
    redis_store = RedisStore("redis://127.0.0.1:1/0")
    assert records_of(redis_store) is redis_store


def test_a_store_overriding_an_older_call_gets_calls_built_from_them() -> None:
    """The merged call would skip the override (tests/security/held_store.py holds
    ``add_connection``)."""
    assert isinstance(records_of(HeldCount()), StoreCalls)
    custom: Any = MemoryStore()
    custom.sessions = CustomSessions()
    assert isinstance(records_of(custom), StoreCalls)


async def test_the_redis_store_opens_and_closes_in_one_script_each(
    shared_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """None of the older calls (four round trips each way): one presence script per call."""
    store = RedisStore(shared_redis.url, key_prefix=f"records-{uuid.uuid4().hex[:10]}")
    recorder = Recorder()
    await store.start(recorder.deliver, recorder.on_gap)
    try:

        def older_call(*args: Any, **kwargs: Any) -> None:
            raise AssertionError("an older call was made")

        for name in ("revoked", "add_connection", "remove_connection"):
            monkeypatch.setattr(store, name, older_call)
        for name in ("claim_session", "create_connection", "save_connection_state", "disconnect"):
            monkeypatch.setattr(store.sessions, name, older_call)
        scripts: list[str] = []
        presence = store._presence
        assert presence is not None
        run = presence._run

        async def counting(script: str, *args: Any, **kwargs: Any) -> Any:
            scripts.append(script)
            return await run(script, *args, **kwargs)

        monkeypatch.setattr(presence, "_run", counting)
        store_id, _ = await store.open_connection("s-1", "alice", "alice", 2, [("user:alice", 1.0)])
        assert store_id is not None
        assert await store.close_connection(store_id, "s-1", "alice", {"data": {}}) is True
        assert scripts == ["open_connection", "close_connection"]
    finally:
        await store.stop()


def test_new_connection_record_is_the_dataclass_built_record() -> None:
    from dataclasses import FrozenInstanceError, astuple, fields

    from netrun_ws.session_backends import ConnectionRecord, new_connection_record

    made = new_connection_record("c", "s", "u", "name", 12.5)
    built = ConnectionRecord("c", "s", "u", "name", 12.5)
    assert type(made) is ConnectionRecord
    assert made == built and astuple(made) == astuple(built)
    assert [spec.name for spec in fields(ConnectionRecord)][5:] == [
        "metadata",
        "client_ip",
        "user_agent",
        "tab_id",
    ]
    assert made.metadata is not new_connection_record("c", "s", "u", "name", 1.0).metadata
    with pytest.raises(FrozenInstanceError):
        made.user_id = "other"  # type: ignore[misc]
