"""A positioned publish with no recipient on its node does not wait for its own copy.

``RedisStore`` implements ``LocalRecipientStore``: told (after the history call) that this node
has no connection the envelope reaches, ``publish`` returns after that one round trip with
``local=0``, and the copy that comes back later is delivered from the subscription as any other,
in offset order, leaving no entry in the broker's own-copy table. With a local recipient, the
publish still waits for its copy and counts it.

The subscription is stalled by a ``deliver`` that blocks: a copy cannot come back, so a publish
that waited for it would wait ``probe_timeout`` (10 s here).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest

from netrun_ws.redis.broker import RedisBroker
from netrun_ws.redis.store import RedisStore
from netrun_ws.store import Envelope, HasLocalRecipients, LocalRecipientStore
from tests.store import Recorder, eventually
from tests.store.test_redis_own_copy import started_node
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(30)

#: Long enough that a publish waiting for a stalled copy is told apart from one that does not.
PROBE_TIMEOUT = 10.0
#: What a publish that does not wait for its copy may take (one loopback round trip, a loaded
#: machine).
PROMPT = 2.0


def note(user: str, n: int) -> Envelope:
    return Envelope("user", user, json.dumps({"type": "note", "n": n}))


class Gate(Recorder):
    """Delivers like ``Recorder`` while ``open`` is set; blocks the subscription otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.open = asyncio.Event()
        self.open.set()

    async def deliver(self, envelope: Envelope) -> int:
        await self.open.wait()
        return await super().deliver(envelope)


@contextlib.asynccontextmanager
async def running_node(
    url: str, recorder: Recorder, has_local: HasLocalRecipients, *, cluster: bool = False
) -> AsyncIterator[tuple[RedisStore, RedisBroker]]:
    """A started store told ``has_local`` (as the host does), and its broker; stopped after."""
    store = await started_node(url, PROBE_TIMEOUT, recorder, has_local, cluster=cluster)
    assert isinstance(store, LocalRecipientStore)  # the optional interface the host looks for
    broker = store._broker
    assert broker is not None
    try:
        yield store, broker
    finally:
        await store.stop()


def offsets(recorder: Recorder, user: str) -> list[int]:
    found = []
    for envelope in recorder.envelopes:
        if envelope.target == user:
            assert envelope.pos is not None
            found.append(envelope.pos.offset)
    return found


async def test_with_the_subscription_stalled_a_publish_for_nobody_here_returns_at_once(
    shared_redis: RedisServer,
) -> None:
    gate = Gate()
    async with running_node(shared_redis.url, gate, lambda envelope: False) as (store, broker):
        gate.open.clear()  # no copy comes back from now on
        await store.publish(note("bob", 0))  # its copy now blocks the subscription's reader
        for n in range(1, 4):
            result = await asyncio.wait_for(store.publish(note("bob", n)), PROMPT)
            assert result.local == 0
        assert gate.envelopes == []  # none came back: none was waited for
        gate.open.set()
        await eventually(lambda: len(gate.envelopes) == 4, what="the 4 copies delivered")
        # Delivered from the subscription, each once, in offset order, with its position.
        assert offsets(gate, "bob") == [1, 2, 3, 4]
        assert [json.loads(e.payload)["n"] for e in gate.envelopes] == [0, 1, 2, 3]
        assert broker._own == {}  # nothing left for copies nobody waits for
        assert store.stats()["gaps"] == 0


async def test_a_publish_with_a_local_recipient_still_waits_and_counts(
    shared_redis: RedisServer,
) -> None:
    gate = Gate()
    async with running_node(shared_redis.url, gate, lambda envelope: True) as (store, broker):
        for n in range(1, 4):
            assert (await store.publish(note("ann", n))).local == 1
        gate.open.clear()
        waiting = asyncio.create_task(store.publish(note("ann", 4)))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # its copy is stalled: it waits for it
        gate.open.set()
        assert (await asyncio.wait_for(waiting, PROMPT)).local == 1
        assert offsets(gate, "ann") == [1, 2, 3, 4]
        assert broker._own == {}


async def test_a_user_who_arrives_before_the_copy_gets_it_once_in_order(
    shared_redis: RedisServer,
) -> None:
    # The host's side: the users connected here, and what each received.
    here: set[str] = set()
    got: dict[str, list[int]] = {}

    class Host(Gate):
        async def deliver(self, envelope: Envelope) -> int:
            await super().deliver(envelope)
            user = envelope.target or ""
            if user not in here:
                return 0
            assert envelope.pos is not None
            got.setdefault(user, []).append(envelope.pos.offset)
            return 1

    host = Host()

    def local(envelope: Envelope) -> bool:
        return envelope.target in here

    async with running_node(shared_redis.url, host, local) as (store, broker):
        host.open.clear()
        first = await asyncio.wait_for(store.publish(note("ann", 1)), PROMPT)
        assert first.local == 0  # ann is not here yet
        here.add("ann")  # ann connects before the copy comes back
        waiting = asyncio.create_task(store.publish(note("ann", 2)))  # now she is: it waits
        await asyncio.sleep(0.3)
        assert not waiting.done()
        host.open.set()
        assert (await asyncio.wait_for(waiting, PROMPT)).local == 1
        assert (await store.publish(note("ann", 3))).local == 1
        assert got == {"ann": [1, 2, 3]}  # the first one too, once, in order
        assert broker._own == {}


@pytest.mark.parametrize("cluster", [False, True], ids=["redis", "redis-cluster"])
async def test_concurrent_publishes_with_and_without_recipients_leave_nothing_behind(
    request: pytest.FixtureRequest, cluster: bool
) -> None:
    # Copies often come back before their publisher has read the script's reply: both ways
    # round, a copy nobody waits for leaves no entry, and a waited one gives its count.
    server: RedisServer | RedisCluster = request.getfixturevalue(
        "redis_cluster" if cluster else "shared_redis"
    )
    recorder = Recorder()

    def local(envelope: Envelope) -> bool:
        return envelope.target == "ann"

    async with running_node(server.url, recorder, local, cluster=cluster) as (store, broker):
        sent = [note("ann" if n % 3 == 0 else "bob", n) for n in range(300)]
        results = await asyncio.wait_for(
            asyncio.gather(*(store.publish(envelope) for envelope in sent)), PROBE_TIMEOUT / 2
        )
        assert [r.local for r in results] == [1 if e.target == "ann" else 0 for e in sent]
        await eventually(lambda: len(recorder.envelopes) == 300, what="every copy delivered")
        for user, count in (("ann", 100), ("bob", 200)):
            assert offsets(recorder, user) == list(range(1, count + 1))
        assert broker._own == {}
