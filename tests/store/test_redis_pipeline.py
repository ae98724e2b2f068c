"""The publish path's pipelined connection (netrun_ws/redis/pipeline.py), on a real redis-server.

Calls of one loop turn go out in one write and their replies come back in order; an error reply
fails only its own call; a lost or frozen Redis fails the calls in flight with RedisStoreError
within the timeout and the next call reconnects; the calls waiting are bounded.
"""

from __future__ import annotations

import asyncio
import uuid

import hiredis
import pytest
import redis.asyncio
from redis.exceptions import NoScriptError, ResponseError

from netrun_ws.redis import pipeline as pipeline_module
from netrun_ws.redis.calls import RedisStoreError, RedisTarget
from netrun_ws.redis.pipeline import PipelinedConnection
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(60)


async def test_calls_of_one_turn_run_in_call_order(shared_redis: RedisServer) -> None:
    key = f"pipeline-{uuid.uuid4().hex[:8]}"
    pipeline = PipelinedConnection(RedisTarget(shared_redis.url), timeout=5.0)
    try:
        futures = [pipeline.call("RPUSH", "RPUSH", key, str(n)) for n in range(500)]
        lengths = await asyncio.gather(*futures)
        assert lengths == list(range(1, 501))  # each reply went to its own caller
        assert await pipeline.call("LRANGE", "LRANGE", key, 0, -1) == [str(n) for n in range(500)]
    finally:
        await pipeline.call("DEL", "DEL", key)
        await pipeline.stop()


async def test_an_error_reply_fails_only_its_own_call(shared_redis: RedisServer) -> None:
    key = f"pipeline-{uuid.uuid4().hex[:8]}"
    pipeline = PipelinedConnection(RedisTarget(shared_redis.url), timeout=5.0)
    try:
        before = pipeline.call("SET", "SET", key, "1")
        wrong = pipeline.call("LPUSH", "LPUSH", key, "x")  # WRONGTYPE: a string, not a list
        noscript = pipeline.call("EVALSHA", "EVALSHA", "0" * 40, 0)
        after = pipeline.call("INCR", "INCR", key)
        results = await asyncio.gather(before, wrong, noscript, after, return_exceptions=True)
        assert results[0] == "OK"  # raw replies: no redis-py response callbacks
        assert isinstance(results[1], ResponseError) and "WRONGTYPE" in str(results[1])
        assert isinstance(results[2], NoScriptError)
        assert results[3] == 2
    finally:
        await pipeline.call("DEL", "DEL", key)
        await pipeline.stop()


async def test_a_restarted_redis_fails_the_calls_in_flight_and_the_next_call_reconnects() -> None:
    async with RedisServer() as server:
        pipeline = PipelinedConnection(RedisTarget(server.url), timeout=2.0)
        try:
            assert await pipeline.call("PING", "PING") == "PONG"
            await server.kill()
            with pytest.raises(RedisStoreError, match=r"Redis at redis://127\.0\.0\.1"):
                await pipeline.call("PING", "PING")
            await server.start()
            assert await pipeline.call("PING", "PING") == "PONG"
        finally:
            await pipeline.stop()


async def test_a_frozen_redis_fails_the_calls_within_the_timeout() -> None:
    async with RedisServer() as server:
        pipeline = PipelinedConnection(RedisTarget(server.url), timeout=0.5)
        try:
            assert await pipeline.call("PING", "PING") == "PONG"
            server.pause()
            loop = asyncio.get_running_loop()
            started = loop.time()
            calls = [pipeline.call("PING", "PING") for _ in range(3)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(result, RedisStoreError) for result in results), results
            assert "did not answer PING within 0.5s" in str(results[0])
            assert loop.time() - started < 3.0
            server.resume()
            assert await pipeline.call("PING", "PING") == "PONG"  # on a new connection
        finally:
            server.resume()
            await pipeline.stop()


async def test_the_calls_waiting_are_bounded(shared_redis: RedisServer) -> None:
    pipeline = PipelinedConnection(RedisTarget(shared_redis.url), timeout=5.0, max_pending=3)
    try:
        futures = [pipeline.call("PING", "PING") for _ in range(4)]
        with pytest.raises(RedisStoreError, match="3 calls await a reply"):
            await futures[3]
        assert await asyncio.gather(*futures[:3]) == ["PONG"] * 3
    finally:
        await pipeline.stop()


async def test_after_stop_a_call_fails_at_once(shared_redis: RedisServer) -> None:
    pipeline = PipelinedConnection(RedisTarget(shared_redis.url), timeout=5.0)
    assert await pipeline.call("PING", "PING") == "PONG"
    await pipeline.stop()
    with pytest.raises(RedisStoreError, match="stopped"):
        await pipeline.call("PING", "PING")
    # A plain client still sees the server: stopping closed only the pipeline's connection.
    client = redis.asyncio.Redis.from_url(shared_redis.url)
    assert await client.ping() is True
    await client.aclose()


@pytest.mark.parametrize("packer", ["hiredis", "redis-py"])
async def test_an_argument_redis_cannot_take_is_refused_when_called(
    shared_redis: RedisServer, packer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if packer == "redis-py":  # as without hiredis (the redis extra installs it)
        monkeypatch.setattr(pipeline_module, "_pack_command", pipeline_module._pack_with_redis_py)
    else:
        assert pipeline_module._pack_command is hiredis.pack_command
    pipeline = PipelinedConnection(RedisTarget(shared_redis.url), timeout=5.0)
    try:
        for bad in (True, None, [1]):
            with pytest.raises(TypeError, match="must be str, bytes or a number"):
                pipeline.call("SET", "SET", "key", bad)
        key = f"pipeline-{uuid.uuid4().hex[:8]}"
        # Text with a lone surrogate (JSON allows one) crosses unchanged.
        values = ("é", b"x\r\ny", 7, 2.5, "a\ud800b")
        assert await pipeline.call("RPUSH", "RPUSH", key, *values) == 5
        raw = redis.asyncio.Redis.from_url(shared_redis.url)
        stored = await raw.lrange(key, 0, -1)
        await raw.delete(key)
        await raw.aclose()
        assert stored == [
            b"\xc3\xa9",
            b"x\r\ny",
            b"7",
            b"2.5",
            "a\ud800b".encode("utf-8", "surrogatepass"),
        ]
    finally:
        await pipeline.stop()
