"""netrun_ws.stats: a node's counts, typed, read from a real server; and what the sinks serve."""

from __future__ import annotations

import dataclasses
import json

import httpx

from netrun_ws import create_app
from netrun_ws.stats import collect_stats
from netrun_ws.testing import Serve
from tests.host.helpers import base_config, wait_for

ECHO = "tests.host.echo_plugin"


def test_before_start_there_is_nothing_open_and_no_store() -> None:
    stats = collect_stats(create_app(base_config()).state.host)
    assert stats.store is None
    assert stats.open_connections == ()
    assert (stats.connections.total_connections, stats.connections.total_connects) == (0, 0)
    assert stats.connections.overflow_policy == "disconnect"


async def test_counts_of_a_live_server(netrun_serve: Serve) -> None:
    server = await netrun_serve({"plugins": [ECHO], "metrics": [{"plugin": "json"}]})
    host = server.host
    ann = await server.connect("ann")  # its welcome read
    await server.connect("bob")
    frame = json.dumps({"type": "echo", "seq": 1})
    assert (await ann.request(frame, "echo"))["seq"] == 1
    stats = collect_stats(host)
    assert sorted(c.user_id for c in stats.open_connections) == ["ann", "bob"]
    assert stats.connections.total_connections == 2
    assert dict(stats.connections.connections_per_user) == {"ann": 1, "bob": 1}
    assert stats.connections.messages_received == 1
    assert stats.connections.bytes_received == len(frame)
    assert stats.connections.messages_sent == 3  # two welcomes and the echo
    assert stats.store is not None and stats.store["backend"] == "memory"
    await server.close_clients()
    await wait_for(lambda: collect_stats(host).connections.total_connections == 0)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        served = (await http.get("/metrics.json")).json()
    stats = collect_stats(host)
    # The json sink serves exactly these stats, under the names get_stats() always had.
    assert served["connections"] == dataclasses.asdict(stats.connections)
    assert served["connections"] == json.loads(json.dumps(host.manager.get_stats()))
    assert served["store"] == stats.store
    assert stats.connections.total_connects == 2 and stats.open_connections == ()
    assert stats.connections.messages_received == 1  # closed connections still count
