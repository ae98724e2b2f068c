"""The history script's call packed by RedisHistory itself (netrun_ws/redis/history.py): the
same bytes as packing its arguments one by one, and the parts kept per channel follow the
history config."""

from __future__ import annotations

import json
import uuid

import pytest
import redis.asyncio as aioredis

from netrun_ws.config import HistoryConfig
from netrun_ws.redis import history as history_module
from netrun_ws.redis.calls import RedisTarget
from netrun_ws.redis.history import RedisHistory
from netrun_ws.redis.layout import KeyLayout
from netrun_ws.redis.pipeline import _pack
from netrun_ws.redis.store import RedisStore
from netrun_ws.store import Envelope
from tests.store import Recorder
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(60)

CHANNELS = ["user:bob", "room:lobby", "room:é ☃", "user:\ud800lone", 'room:a"b\\c', "room:"]


def unconnected_history(config: HistoryConfig, *, cluster: bool = False) -> RedisHistory:
    client = aioredis.Redis()  # never connected: packing needs no Redis
    return RedisHistory(
        client,
        target=RedisTarget("redis://localhost"),
        layout=KeyLayout("netrun_ws", cluster=cluster),
        publish_command="SPUBLISH" if cluster else "PUBLISH",
        timeout=1.0,
        session_ttl=600,
        config=config,
    )


def packed_one_by_one(history: RedisHistory, channel: str, *values: object) -> bytes:
    args = history._publish_args(channel, *values)  # type: ignore[arg-type]
    return _pack(("EVALSHA", history._publish.sha, 2, *history._keys(channel), *args))


@pytest.mark.parametrize("cluster", [False, True], ids=["one Redis", "cluster slot groups"])
def test_the_packed_call_is_its_arguments_packed_one_by_one(cluster: bool) -> None:
    history = unconnected_history(HistoryConfig(rooms_size=7, users_ttl=90.6), cluster=cluster)
    for round_ in range(2):  # packed, then from the parts kept
        for channel in CHANNELS:
            header = f'[1,"node-{round_}","room","x",0,[],[]'.encode()
            body = '{"t":"\ud800é"}'.encode("utf-8", "surrogatepass")
            values = ("AbCdEfGhIjKl", 1_733_212_345_678 + round_, header, body)
            packed = history._packed_publish(channel, *values)
            assert packed == packed_one_by_one(history, channel, *values)


def test_a_new_config_or_many_channels_drop_the_parts_kept() -> None:
    history = unconnected_history(HistoryConfig(rooms_size=7))
    values = ("AbCdEfGhIjKl", 1, b"[1", b"{}")
    before = history._packed_publish("room:lobby", *values)
    history.config = HistoryConfig(rooms_size=8, rooms_ttl=1234)
    after = history._packed_publish("room:lobby", *values)
    assert after != before and after == packed_one_by_one(history, "room:lobby", *values)
    for index in range(history_module._MAX_PACKED_CHANNELS + 5):
        history._packed_publish(f"user:u{index}", *values)
    assert len(history._publish_parts) <= history_module._MAX_PACKED_CHANNELS


async def test_a_changed_history_size_is_what_the_stream_keeps(shared_redis: RedisServer) -> None:
    prefix = f"pack-{uuid.uuid4().hex[:10]}"
    store = RedisStore(shared_redis.url, key_prefix=prefix, probe_interval=0.2, probe_timeout=1.0)
    store.configure_history(HistoryConfig(rooms_size=3))
    await store.start(Recorder().deliver, Recorder().on_gap)
    client = aioredis.Redis.from_url(shared_redis.url)
    stream = f"{prefix}:h:room:lobby:s"
    try:
        for n in range(5):
            await store.publish(Envelope("room", "lobby", json.dumps({"n": n})))
        assert await client.xlen(stream) == 3
        store.configure_history(HistoryConfig(rooms_size=6))
        for n in range(5, 12):
            await store.publish(Envelope("room", "lobby", json.dumps({"n": n})))
        assert await client.xlen(stream) == 6
    finally:
        await store.stop()
        await client.aclose()
