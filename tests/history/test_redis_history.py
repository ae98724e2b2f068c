"""Recovery on the Redis store, in process: resumes while a publisher keeps publishing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from netrun_ws import create_app
from tests.history.helpers import chat_config, last_positions, next_message, open_client
from tests.support.redis_server import RedisServer
from tests.support.server import serve

pytestmark = pytest.mark.timeout(60)


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
            nonlocal sent
            while not stop.is_set():
                sent += 1
                await host.publish_room("feed", {"type": "tick", "n": sent})

        task = asyncio.create_task(publisher())
        for round_ in range(10):
            while len([m for m in received if m.get("type") == "tick"]) < 50 * (round_ + 1):
                received.append(await next_message(ann))
            await ann.close()
            ann, _ = await open_client(addr, "ann", welcome["session_id"], last_positions(received))
        stop.set()
        await task
        while (message := await next_message(ann)).get("n") != sent:
            received.append(message)
        received.append(message)
        assert [m["n"] for m in received if m.get("type") == "tick"] == list(range(1, sent + 1))
        assert [m for m in received if m.get("type") == "gap"] == []
        offsets = [m["pos"]["offset"] for m in received if "pos" in m]
        assert offsets == sorted(set(offsets))  # in order, none twice
        await ann.close()
