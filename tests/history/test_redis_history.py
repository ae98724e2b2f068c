"""Recovery on the Redis store, in process: resumes while a publisher keeps publishing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from netrun_ws import create_app
from netrun_ws.redis.store import RedisStore
from netrun_ws.runtime.delivery import Delivery
from netrun_ws.store import Envelope
from tests.history.helpers import (
    chat_config,
    close_reading,
    last_positions,
    next_message,
    open_client,
    read_until,
)
from tests.support.redis_server import RedisServer
from tests.support.server import serve

pytestmark = pytest.mark.timeout(60)

#: How far the publisher may run ahead of what the client has read.
AHEAD = 200


async def test_ten_resumes_under_a_publisher_lose_and_repeat_nothing(
    redis_server: RedisServer,
) -> None:
    config = chat_config()
    config["store"] = {
        "plugin": "redis",
        "url": redis_server.url,
        "probe_interval": 0.2,
        "probe_timeout": 1.0,
    }
    app = create_app(config)
    host = app.state.host
    async with serve(app) as addr:
        ann, welcome = await open_client(addr, "ann")
        await ann.send(json.dumps({"type": "join", "room": "feed"}))
        received: list[dict[str, Any]] = []
        stop = asyncio.Event()
        sent = 0

        async def publisher() -> None:
            # At most AHEAD messages ahead of the client, so that however long a close and
            # reconnect take on a loaded machine, a resume replays fewer than the server's
            # max_replay_messages (1000): unbounded, it outran the client by thousands a second.
            nonlocal sent
            while not stop.is_set():
                if sent - len(received) >= AHEAD:
                    await asyncio.sleep(0.001)
                    continue
                sent += 1
                await host.publish_room("feed", {"type": "tick", "n": sent})

        task = asyncio.create_task(publisher())
        for round_ in range(10):
            while len([m for m in received if m.get("type") == "tick"]) < 50 * (round_ + 1):
                received.append(await next_message(ann))
            await close_reading(ann, received)
            ann, _ = await open_client(addr, "ann", welcome["session_id"], last_positions(received))
        stop.set()
        await task
        received += await read_until(ann, "recovered")  # the last resume's
        while not any(m.get("n") == sent for m in received):
            received.append(await next_message(ann))
        assert [m["n"] for m in received if m.get("type") == "tick"] == list(range(1, sent + 1))
        assert [m for m in received if m.get("type") == "gap"] == []
        offsets = [m["pos"]["offset"] for m in received if "pos" in m]
        assert offsets == sorted(set(offsets))  # in order, none twice
        # Every resume recovered, and the publisher did publish while the client was away.
        recovered = [m["channels"]["room:feed"] for m in received if m.get("type") == "recovered"]
        assert len(recovered) == 10
        assert sum(channel["replayed"] for channel in recovered) > 0
        await ann.close()


async def test_a_message_for_a_user_not_here_yet_reaches_her_connection_once(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # send_to_user for a user with no connection on this node returns after the history call
    # (0 reached here), without waiting for its own copy from the bus; a connection of hers
    # opened before that copy arrives gets it from the bus, once, in offset order. The copy is
    # held back here until she is connected (a slow subscription); a publish waiting for it
    # would wait probe_timeout (10 s).
    arrived = asyncio.Event()
    release = asyncio.Event()
    deliver_local = Delivery.deliver_local

    async def held_first_note(self: Delivery, envelope: Envelope) -> int:
        if envelope.target == "ann" and '"n":1' in str(envelope.payload):
            arrived.set()
            await release.wait()
        return await deliver_local(self, envelope)

    monkeypatch.setattr(Delivery, "deliver_local", held_first_note)
    config = chat_config()
    config["store"] = {"plugin": "redis", "url": redis_server.url, "probe_timeout": 10.0}
    app = create_app(config)
    host = app.state.host
    async with serve(app) as addr:
        reached = await asyncio.wait_for(host.send_to_user("ann", {"type": "note", "n": 1}), 2)
        assert reached == 0
        await asyncio.wait_for(arrived.wait(), 5)  # the copy is back, held before delivery
        ann, _ = await open_client(addr, "ann")
        release.set()
        first = await next_message(ann)
        assert (first["type"], first["n"], first["pos"]["offset"]) == ("note", 1, 1)
        assert await host.send_to_user("ann", {"type": "note", "n": 2}) == 1  # she is here now
        second = await next_message(ann)
        assert (second["n"], second["pos"]["offset"]) == (2, 2)
        with pytest.raises(TimeoutError):  # nothing twice
            await next_message(ann, timeout=0.3)
        store = host.store
        assert isinstance(store, RedisStore) and store._broker is not None
        assert store._broker._own == {}
        await ann.close()
