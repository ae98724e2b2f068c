"""The built-in metrics sinks and the heartbeat plugin read the connections' own counters instead of
running a hook per message: their numbers must still be exact, over a real server."""

from __future__ import annotations

import contextlib
import json
import re

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from netrun_ws import CloseCode, create_app
from netrun_ws.testing import Serve
from tests.host.helpers import base_config, recv_json, recv_until, wait_for
from tests.host.manual_heartbeat import heartbeat_by_hand
from tests.support.server import serve

ECHO = "tests.host.echo_plugin"


async def recv_text(client: ClientConnection) -> str:
    """The next message, which the server sends as a text frame."""
    message = await client.recv()
    assert isinstance(message, str), message
    return message


def counter(exposition: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", exposition, re.MULTILINE)
    assert match is not None, f"{name} missing from the exposition"
    return float(match.group(1))


async def test_traffic_counters_are_exact_in_prometheus_and_json() -> None:
    config = base_config(
        metrics=[{"plugin": "prometheus"}, {"plugin": "json"}, {"plugin": "log", "interval": 0}],
        limits={"messages_per_second": 0},
        plugins=[ECHO],
    )
    app = create_app(config)
    sent_sizes: list[int] = []
    received_sizes: list[int] = []
    async with serve(app) as addr:
        for user, count in (("ann", 3), ("bob", 2)):
            async with connect(f"ws://{addr}/ws?user_id={user}", compression=None) as client:
                received_sizes.append(len((await recv_text(client)).encode()))  # the welcome
                for seq in range(count):
                    frame = json.dumps({"type": "echo", "seq": seq, "text": "é" * seq})
                    sent_sizes.append(len(frame.encode()))
                    await client.send(frame)
                    received_sizes.append(len((await recv_text(client)).encode()))
        await wait_for(lambda: not app.state.host.manager.connections())
        async with httpx.AsyncClient(base_url=f"http://{addr}") as http:
            exposition = (await http.get("/metrics")).text
            stats = (await http.get("/metrics.json")).json()
    assert counter(exposition, "netrun_ws_messages_received_total") == 5
    assert counter(exposition, "netrun_ws_received_bytes_total") == sum(sent_sizes)
    assert counter(exposition, "netrun_ws_messages_sent_total") == 7  # 5 replies + 2 welcomes
    assert counter(exposition, "netrun_ws_sent_bytes_total") == sum(received_sizes)
    metrics = stats["metrics"]
    assert (metrics["messages_received"], metrics["bytes_received"]) == (5, sum(sent_sizes))
    assert (metrics["messages_sent"], metrics["bytes_sent"]) == (7, sum(received_sizes))


async def test_the_json_and_log_sinks_count_connections_from_the_host(
    netrun_serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    server = await netrun_serve(
        {"metrics": [{"plugin": "json"}, {"plugin": "log", "interval": 0}], "plugins": [ECHO]}
    )
    ann, ann_again, bob = [await server.connect(user) for user in ("ann", "ann", "bob")]
    await ann_again.close(1000)
    await wait_for(lambda: len(server.host.manager) == 2)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        metrics = (await http.get("/metrics.json")).json()["metrics"]
    assert metrics["active_connections"] == 2
    assert metrics["peak_connections"] == 3
    assert metrics["total_connections"] == 3
    assert metrics["unique_users"] == 2
    assert metrics["messages_sent"] == 3  # the welcomes
    assert metrics["messages_received"] == 0
    assert metrics["total_bytes"] == metrics["bytes_sent"] > 0
    for slot in ("metrics.0", "metrics.1"):  # figures come from the host: none kept per connection
        sink = server.host.plugin_manager.get_plugin(server.host.slots[slot])
        assert sink is not None and sink.collector.active_connections == 0
    await bob.send("{not json")
    assert (await bob.recv())["code"] == "invalid_json"
    for client in (ann, bob):
        await client.close(1000)
    await wait_for(lambda: len(server.host.manager) == 0)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        metrics = (await http.get("/metrics.json")).json()["metrics"]
    assert (metrics["active_connections"], metrics["peak_connections"]) == (0, 3)
    assert (metrics["total_connections"], metrics["errors"]) == (3, 1)


async def test_connections_closed_are_counted_by_close_code(netrun_serve: Serve) -> None:
    server = await netrun_serve({"metrics": [{"plugin": "prometheus"}], "plugins": [ECHO]})
    for user, code in (("ann", 1000), ("bob", 4321), ("cid", 1000)):
        client = await server.connect(user)  # its welcome read
        await client.close(code)
        await wait_for(lambda: not server.host.manager.connections())
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        exposition = (await http.get("/metrics")).text
    closed = "netrun_ws_connections_closed_total"
    assert counter(exposition, closed + '{code="1000"}') == 2
    assert counter(exposition, closed + '{code="4321"}') == 1
    assert counter(exposition, "netrun_ws_connections_opened_total") == 3
    assert counter(exposition, "netrun_ws_connections") == 0


async def test_any_frame_keeps_a_connection_alive_without_a_pong(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passes = heartbeat_by_hand(monkeypatch)
    heartbeat = {"plugin": "ping", "interval": 5, "timeout": 3600, "max_missed": 2}
    config = base_config(heartbeat=heartbeat, limits={"messages_per_second": 0}, plugins=[ECHO])
    app = create_app(config)
    async with serve(app) as addr:
        async with connect(f"ws://{addr}/ws?user_id=busy") as busy:
            async with connect(f"ws://{addr}/ws?user_id=idle") as idle:
                await recv_json(busy)
                idle_id = (await recv_json(idle))["connection_id"]
                # busy never answers a ping, but sends an echo between passes; idle is silent
                # and is stale at the third pass (missed the first and second pings).
                for seq in range(6):
                    await busy.send(json.dumps({"type": "echo", "seq": seq}))
                    await recv_until(busy, "echo")  # the server has read it
                    await passes.step()
                    gone = app.state.host.connection(idle_id) is None
                    assert gone is (seq >= 2), f"idle after pass {seq + 1}"
                with contextlib.suppress(websockets.ConnectionClosed):
                    while True:
                        await recv_json(idle)
                assert idle.close_code == CloseCode.HEARTBEAT_TIMEOUT
                assert busy.close_code is None
