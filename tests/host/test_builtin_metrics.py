"""The built-in metrics sinks and the heartbeat plugin read the connections' own counters instead of
running a hook per message: their numbers must still be exact, over a real server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re

import httpx
import websockets
from websockets.asyncio.client import connect

from netrun_ws import CloseCode, create_app
from tests.host.helpers import base_config, recv_json, wait_for
from tests.support.server import serve

ECHO = "tests.host.echo_plugin"


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
                received_sizes.append(len((await client.recv()).encode()))  # the welcome
                for seq in range(count):
                    frame = json.dumps({"type": "echo", "seq": seq, "text": "é" * seq})
                    sent_sizes.append(len(frame.encode()))
                    await client.send(frame)
                    received_sizes.append(len((await client.recv()).encode()))
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


async def test_any_frame_keeps_a_connection_alive_without_a_pong() -> None:
    heartbeat = {"plugin": "ping", "interval": 0.1, "timeout": 0.3, "max_missed": 2}
    config = base_config(heartbeat=heartbeat, limits={"messages_per_second": 0}, plugins=[ECHO])
    async with serve(create_app(config)) as addr:
        async with connect(f"ws://{addr}/ws?user_id=busy") as busy:
            async with connect(f"ws://{addr}/ws?user_id=idle") as idle:
                await recv_json(busy)
                # busy never answers a ping, but sends echoes for three timeouts' worth of time.
                for seq in range(18):
                    await busy.send(json.dumps({"type": "echo", "seq": seq}))
                    await asyncio.sleep(0.05)
                with contextlib.suppress(websockets.ConnectionClosed):
                    async with asyncio.timeout(3):
                        while True:
                            await idle.recv()
                assert idle.close_code == CloseCode.HEARTBEAT_TIMEOUT
                assert busy.close_code is None
