"""``RedisStore.stop`` returns within its budget whatever Redis does (issue 15, point 11).

Every await on the shutdown path is bounded: with Redis stopped, frozen (SIGSTOP) or killed while
the stop is under way, ``stop`` returns within ``stop_timeout`` (twice ``operation_timeout``) plus
a little grace per step, and one warning line names what it abandoned. Each test owns a private
redis-server on a free port.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest

from netrun_ws.redis.calls import finish_within
from netrun_ws.redis.store import RedisStore
from tests.store import Recorder
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(60)

OPERATION_TIMEOUT = 0.5
#: stop's budget, the grace its six steps may each get past it, and slack for a loaded machine.
BOUND = 2 * OPERATION_TIMEOUT + 6 * 0.1 + 2.0


@pytest.fixture
async def started(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore(
        redis_server.url,
        key_prefix=f"stop-{uuid.uuid4().hex[:8]}",
        node_ttl=2.0,
        node_heartbeat=0.2,
        probe_interval=0.2,
        probe_timeout=0.6,
        operation_timeout=OPERATION_TIMEOUT,
    )
    recorder = Recorder()
    await store.start(recorder.deliver, recorder.on_gap)
    try:
        yield store
    finally:
        if redis_server.running:
            redis_server.resume()  # harmless when not paused
        await asyncio.wait_for(store.stop(), BOUND)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.WARNING and "abandoning" in record.getMessage()
    ]


async def bounded_stop(store: RedisStore) -> None:
    """``store.stop()``, failing the test if it outlives :data:`BOUND`."""
    async with asyncio.timeout(BOUND):
        await store.stop()
    assert await store.ready() is False


async def test_stop_with_redis_answering_abandons_nothing(
    started: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    await bounded_stop(started)
    assert warnings(caplog) == []


async def test_stop_with_redis_gone(
    started: RedisStore, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    await redis_server.kill()
    await bounded_stop(started)
    (line,) = warnings(caplog)
    assert "presence removal" in line


async def test_stop_with_redis_frozen(
    started: RedisStore, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.pause()
    await bounded_stop(started)
    (line,) = warnings(caplog)
    assert "presence removal" in line
    assert "did not answer" in line or "no answer within" in line


async def test_stop_with_redis_killed_mid_stop(
    started: RedisStore, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.pause()  # the first Redis step hangs...
    stopping = asyncio.ensure_future(bounded_stop(started))
    await asyncio.sleep(OPERATION_TIMEOUT / 2)
    await redis_server.kill()  # ...and Redis dies under it
    await stopping
    assert len(warnings(caplog)) == 1


async def test_a_second_stop_and_a_stop_after_a_failed_one_return_at_once(
    started: RedisStore, redis_server: RedisServer
) -> None:
    redis_server.pause()
    await bounded_stop(started)
    await bounded_stop(started)  # idempotent


# -- the helper: a step that ignores cancellation is left behind, not awaited --------------------


async def test_finish_within_abandons_a_step_that_ignores_cancellation() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # swallows every cancellation, like a hung close

    outcome = await finish_within("stubborn step", stubborn(), 0.05)
    assert outcome is not None
    assert outcome.step == "stubborn step"
    assert outcome.why.startswith("no answer within")
    release.set()
    await asyncio.sleep(0)


async def test_finish_within_reports_a_failure_in_one_line() -> None:
    async def failing() -> None:
        raise ConnectionError("Connection refused\nsecond line")

    outcome = await finish_within("step", failing(), 1.0)
    assert outcome is not None
    assert outcome.why == "ConnectionError: Connection refused"
    assert await finish_within("fine", asyncio.sleep(0), 1.0) is None
