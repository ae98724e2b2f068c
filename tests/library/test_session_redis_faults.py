"""WebSocketSessionManager when its Redis restarts, dies or freezes under it.

Documented contract: each call either succeeds (after a transparent reconnect) or raises
``SessionStoreError`` within about ``operation_timeout`` seconds, never hangs, and the manager
works again, without being rebuilt, once Redis is back. Every test has a private redis-server.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from netrun_ws import WebSocketSessionManager
from netrun_ws.session import SessionStoreError
from tests.support.redis_server import RedisServer, redis_server_binary
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)

REPO_ROOT = Path(__file__).resolve().parents[2]

OPERATION_TIMEOUT = 0.5
#: Longest a failing call may take: the operation timeout plus scheduling slack.
FAIL_WITHIN = OPERATION_TIMEOUT + 1.0
PASSWORD = "fault-test-pw"


@pytest.fixture
async def server() -> AsyncIterator[RedisServer]:
    async with RedisServer(password=PASSWORD) as private:
        yield private


@pytest.fixture
async def manager(server: RedisServer) -> AsyncIterator[WebSocketSessionManager]:
    sessions = WebSocketSessionManager(redis_url=server.url, operation_timeout=OPERATION_TIMEOUT)
    await sessions.initialize()
    yield sessions
    await sessions.close()


async def outcome(call: Awaitable[Any]) -> tuple[Any, float]:
    """(result or the SessionStoreError raised, seconds taken); fails the test on a hang."""
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(call, 10)
    except SessionStoreError as error:
        result = error
    return result, time.monotonic() - started


async def assert_works(manager: WebSocketSessionManager) -> None:
    """Every operation succeeds and sees what it wrote."""
    cid = await asyncio.wait_for(manager.create_connection("s-ok", "u-ok", "n"), 5)
    record = await manager.get_connection(cid)
    assert record is not None and record["user_id"] == "u-ok"
    assert await manager.update_heartbeat(cid) is True
    assert await manager.save_connection_state(cid, {"ok": True}) is True
    assert await manager.restore_connection_state(cid) == {"ok": True}
    assert cid in await manager.get_user_connections("u-ok")
    assert await manager.cleanup_stale_connections() == 0
    assert (await manager.get_connection_stats())["total_connections"] >= 1
    assert await manager.disconnect(cid, save_state=False) is True


def every_call(
    manager: WebSocketSessionManager, cid: str
) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "create_connection": lambda: manager.create_connection("s", "u", "n"),
        "get_connection": lambda: manager.get_connection(cid),
        "update_heartbeat": lambda: manager.update_heartbeat(cid),
        "save_connection_state": lambda: manager.save_connection_state(cid, {"a": 1}),
        "restore_connection_state": lambda: manager.restore_connection_state(cid),
        "get_user_connections": lambda: manager.get_user_connections("u"),
        "cleanup_stale_connections": lambda: manager.cleanup_stale_connections(),
        "get_connection_stats": lambda: manager.get_connection_stats(),
        "disconnect": lambda: manager.disconnect(cid),
    }


async def test_restart_under_a_live_manager(
    server: RedisServer, manager: WebSocketSessionManager
) -> None:
    cid = await manager.create_connection("s", "u", "n")
    await manager.save_connection_state(cid, {"before": "restart"})
    await server.restart()  # same port; --save "" so the data set is empty

    # Each call reconnects (redis-py retries) or reports the outage; none hangs. The data
    # (and the server's script cache) went with the old process.
    for name, call in every_call(manager, cid).items():
        result, took = await outcome(call())
        assert took < FAIL_WITHIN, name
        if isinstance(result, SessionStoreError):
            assert "redis://:***@127.0.0.1" in str(result), name
        elif name == "get_connection":
            assert result is None
    await assert_works(manager)


async def test_redis_down_fails_fast_then_recovers(
    server: RedisServer, manager: WebSocketSessionManager
) -> None:
    cid = await manager.create_connection("s", "u", "n")
    await server.kill()

    for name, call in every_call(manager, cid).items():
        result, took = await outcome(call())
        assert isinstance(result, SessionStoreError), (name, result)
        assert took < FAIL_WITHIN, name
        message = str(result)
        assert f"redis://:***@127.0.0.1:{server.port}/0" in message, message
        assert PASSWORD not in message
        assert name in message  # the operation that failed is named

    await server.start()
    await assert_works(manager)


async def test_frozen_redis_times_out_then_recovers(
    server: RedisServer, manager: WebSocketSessionManager
) -> None:
    kept = await manager.create_connection("s-kept", "u-kept", "kept")
    await manager.save_connection_state(kept, {"v": "kept"})
    server.pause()  # SIGSTOP: the port stays open, nothing answers
    try:
        for name, call in every_call(manager, kept).items():
            result, took = await outcome(call())
            assert isinstance(result, SessionStoreError), (name, result)
            assert f"within {OPERATION_TIMEOUT:g}s" in str(result)
            assert took < FAIL_WITHIN, name
    finally:
        server.resume()

    # Replies to the abandoned requests must not be read as answers to new ones.
    info = await asyncio.wait_for(manager.get_connection(kept), 5)
    assert info is not None and info["username"] == "kept"
    assert await manager.restore_connection_state(kept) == {"v": "kept"}
    assert await manager.get_user_connections("u-kept") == [kept]
    await assert_works(manager)


async def test_initialize_while_down_then_retry(server: RedisServer) -> None:
    await server.kill()
    manager = WebSocketSessionManager(redis_url=server.url, operation_timeout=OPERATION_TIMEOUT)
    result, took = await outcome(manager.initialize())
    assert isinstance(result, SessionStoreError)
    assert "PING" in str(result) and PASSWORD not in str(result)
    assert took < FAIL_WITHIN
    await server.start()
    await asyncio.wait_for(manager.initialize(), 5)
    await assert_works(manager)
    await manager.close()


async def test_callers_client_is_bounded_by_operation_timeout(server: RedisServer) -> None:
    # redis-py's own defaults retry for several seconds; the manager still answers in time.
    client = aioredis.Redis.from_url(server.url)
    manager = WebSocketSessionManager(redis_client=client, operation_timeout=OPERATION_TIMEOUT)
    try:
        await manager.initialize()
        await server.kill()
        result, took = await outcome(manager.create_connection("s", "u", "n"))
        assert isinstance(result, SessionStoreError)
        assert PASSWORD not in str(result)
        assert took < FAIL_WITHIN
        await server.start()
        await assert_works(manager)
    finally:
        await manager.close()
        await client.aclose()


async def test_restart_during_load_leaves_no_debris(
    server: RedisServer, manager: WebSocketSessionManager
) -> None:
    failures: list[BaseException] = []
    live: set[str] = set()
    rounds = 0  # create/heartbeat/disconnect rounds the workers completed
    stop = asyncio.Event()

    async def churn(worker: int) -> None:
        nonlocal rounds
        while not stop.is_set():
            try:
                cid = await manager.create_connection(f"s{worker}", f"u{worker}", "n")
                live.add(cid)
                await manager.update_heartbeat(cid)
                if await manager.disconnect(cid, save_state=False):
                    live.discard(cid)
                rounds += 1
            except SessionStoreError:
                await asyncio.sleep(0.01)
            except Exception as error:  # anything else breaks the contract
                failures.append(error)
                return

    workers = [asyncio.create_task(churn(i)) for i in range(8)]
    # The restart lands mid-load (every worker is busy by then), and load goes on after it
    # until the workers have completed rounds against the restarted server too.
    await eventually(lambda: rounds >= 40 or failures, timeout=20, what="load before")
    await server.restart()
    restarted_at = rounds
    await eventually(lambda: rounds >= restarted_at + 40 or failures, timeout=20, what="load after")
    stop.set()
    await asyncio.wait_for(asyncio.gather(*workers), 10)
    assert failures == []

    # Whatever was created after the restart and not yet removed is removed now.
    for cid in live:
        await manager.disconnect(cid, save_state=False)
    assert (await manager.get_connection_stats())["total_connections"] == 0
    raw = aioredis.Redis.from_url(server.url)
    try:
        assert [key async for key in raw.scan_iter(match="netrun_ws:*")] == []
    finally:
        await raw.aclose()


# ------------------------------------------------------------------------------------ the helper


def test_missing_redis_server_skips_loudly_or_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="REDIS TESTS NOT RUN"):
        redis_server_binary()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        redis_server_binary()


def test_servers_left_running_are_stopped_at_exit() -> None:
    code = (
        "from tests.support.redis_server import RedisServer\n"
        "running, paused = RedisServer(), RedisServer()\n"
        "running.start_blocking(); paused.start_blocking(); paused.pause()\n"
        "print(running.pid, paused.pid)\n"
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 15
    for pid in map(int, result.stdout.split()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
