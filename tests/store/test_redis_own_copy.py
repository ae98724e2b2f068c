"""A positioned publish waits for its own copy from the bus; the broker bounds that wait.

No timer per publish: the broker's probe loop gives up the copies older than ``probe_timeout``
(the publish then reports 0 local deliveries), and stopping the store or losing the
subscription gives up every copy still awaited at once.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import redis.asyncio as aioredis

from netrun_ws.redis.store import RedisStore
from netrun_ws.store import Envelope, HasLocalRecipients
from tests.store import Recorder
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(30)

SAY = Envelope("room", "lobby", json.dumps({"type": "say"}))


class Blocking(Recorder):
    """Delivers the first envelope, then blocks every delivery until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def deliver(self, envelope: Envelope) -> int:
        if self.envelopes:
            await self.release.wait()
        return await super().deliver(envelope)


async def started_node(
    url: str,
    probe_timeout: float,
    recorder: Recorder,
    has_local: HasLocalRecipients | None = None,
    *,
    cluster: bool = False,
) -> RedisStore:
    """A store with history on (the default) and a fresh key prefix, delivering to ``recorder``;
    given ``has_local`` before it starts, as the host does (``LocalRecipientStore``)."""
    store = RedisStore(
        url,
        key_prefix=f"own-{uuid.uuid4().hex[:10]}",
        probe_interval=0.2,
        probe_timeout=probe_timeout,
        operation_timeout=1.0,
        cluster=cluster,
    )
    if has_local is not None:
        store.use_local_recipients(has_local)
    await store.start(recorder.deliver, recorder.on_gap)
    return store


async def test_a_copy_that_is_not_delivered_gives_0_after_about_probe_timeout(
    shared_redis: RedisServer,
) -> None:
    # Delivering the first copy fails.
    store = await started_node(shared_redis.url, 0.8, Recorder(fail_first=1))
    try:
        started = time.monotonic()
        result = await store.publish(SAY)
        waited = time.monotonic() - started
        assert result.local == 0 and store.stats()["delivery_errors"] == 1
        assert 0.8 <= waited < 0.8 + 0.5  # probe_timeout, plus at most a probe loop tick
        started = time.monotonic()
        result = await store.publish(SAY)
        assert result.local == 1 and time.monotonic() - started < 0.5
    finally:
        await store.stop()


async def test_stopping_the_store_ends_a_publish_waiting_for_its_copy(
    shared_redis: RedisServer,
) -> None:
    store = await started_node(shared_redis.url, 10.0, Blocking())
    await store.publish(SAY)
    waiting = asyncio.create_task(store.publish(SAY))  # its copy's delivery blocks
    await asyncio.sleep(0.3)
    assert not waiting.done()
    started = time.monotonic()
    await store.stop()
    result = await asyncio.wait_for(waiting, 2.0)  # not the 10 s of probe_timeout
    assert result.local == 0 and time.monotonic() - started < 3.0


async def test_a_lost_subscription_gives_up_the_copies_awaited(
    shared_redis: RedisServer,
) -> None:
    store = await started_node(shared_redis.url, 10.0, Recorder())
    try:
        broker = store._broker
        assert broker is not None
        # A copy still on its way when the subscription goes (a race a test cannot stage).
        awaited = broker.own_delivery(("room", "lobby", 99, "some-epoch"))
        raw = aioredis.Redis.from_url(shared_redis.url)
        try:
            await raw.client_kill_filter(_type="pubsub")
        finally:
            await raw.aclose()
        assert await asyncio.wait_for(awaited, 3.0) == 0  # not the 10 s of probe_timeout
    finally:
        await store.stop()
