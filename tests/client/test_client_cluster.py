"""The client across real `netrun-ws run` nodes on one redis-server: when its node is killed with
SIGKILL it moves to the next node it knows, resumes there and recovers every message once."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from netrun_ws.client import Client, State
from tests.client.helpers import Recorder
from tests.client.test_client_recovery import Feed, joined
from tests.cluster.test_cluster import API_KEY, cluster
from tests.host.helpers import wait_for
from tests.support.cli_server import RunningServer
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(120)


class HttpPublisher:
    """Publishes ticks to a room through a node's publish API, numbered 1, 2, ... until stopped."""

    def __init__(self, node: RunningServer, room: str) -> None:
        self.sent = 0
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._publish(node, room))

    async def _publish(self, node: RunningServer, room: str) -> None:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=f"http://{node.addr}", headers=headers) as http:
            while not self._stop.is_set():
                body = {"room": room, "data": {"type": "tick", "n": self.sent + 1}}
                answer = await http.post("/api/publish", json=body)
                assert answer.status_code == 200, answer.text
                self.sent += 1
                await asyncio.sleep(0.005)

    async def stop(self) -> int:
        self._stop.set()
        await self._task
        return self.sent


async def test_a_client_of_a_sigkilled_node_moves_to_the_next_and_recovers(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    recorder = Recorder()
    async with cluster(tmp_path, redis_server, nodes=2) as (a, b):
        urls = [f"ws://{a.addr}/ws", f"ws://{b.addr}/ws"]  # the cluster's nodes, a first
        client = Client(
            urls, params={"user_id": "ann"}, on_state=recorder.on_state, on_gap=recorder.on_gap
        )
        async with client:
            await joined(client, "feed")
            feed = Feed(client)
            publisher = HttpPublisher(b, "feed")
            try:
                await wait_for(lambda: len(feed.ticks()) >= 30, timeout=20)
                a.process.send_signal(signal.SIGKILL)
                await a.process.wait()
                await recorder.wait_state(State.CONNECTED, count=2, timeout=20)
                assert client.url == urls[1]
                await wait_for(lambda: feed.of_type("recovered"), timeout=20)
            finally:
                last = await publisher.stop()
            await feed.until_tick(last, timeout=20)
    assert feed.ticks() == list(range(1, last + 1))
    assert recorder.gaps == []
    assert [s.resumed for s in recorder.states if s.state is State.CONNECTED] == [False, True]
    (recovered,) = feed.of_type("recovered")
    assert recovered["channels"]["room:feed"]["replayed"] > 0
