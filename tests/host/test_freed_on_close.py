"""A closed connection is freed by reference counting, not left to the cyclic collector.

Objects in a reference cycle wait for Python's cyclic garbage collector, whose full collections
grow rarer as a busy node holds more live objects: under churn, closed connections (protocol,
parser, buffers, scope, session objects) piled up for minutes (the soak run's RSS rose by tens of
MB before levelling off). Here every object a netrun-ws connection leaves in a cycle is caught
with ``gc.DEBUG_SAVEALL``: connects, room joins, room and direct messages, heartbeats, a
refused handshake and a close by the server, under both websocket protocols.

``DEBUG_SAVEALL`` does not see a cycle through a suspended generator: the collector runs the
generator's finaliser, which breaks the cycle, and the objects are then freed by refcounting
without being counted as garbage. websockets' frame parser is such a generator. So the
collector is also switched off while the connections come and go, and no per-connection object
of the server may be alive once they are all closed.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections import Counter
from pathlib import Path

import pytest
import websockets

from netrun_ws.testing import serve

ROOT = Path(__file__).resolve().parents[2]
CONNECTIONS = 40


async def _churn(ws_url: str, index: int) -> None:
    async with websockets.connect(ws_url) as client:
        await client.recv()  # the welcome
        room = f"room-{index % 4}"
        await client.send(json.dumps({"type": "join", "room": room}))
        await client.send(json.dumps({"type": "say", "room": room, "text": "hi"}))
        await client.send(json.dumps({"type": "direct", "to": "nobody", "text": "hi"}))
        await client.send("{not json")  # an error reply
        await client.recv()


def _qualname(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


#: What the server makes for each connection (the clients' objects are websockets.client's).
PER_CONNECTION = {
    "netrun_ws.connection.Connection",
    "netrun_ws.transport.websocket.NetrunWebSocketProtocol",
    "netrun_ws._upstream.websockets.ParsedRequestServerProtocol",
    "websockets.server.ServerProtocol",
}


def _alive_per_connection(ws_protocol: str) -> Counter[str]:
    # uvicorn's own protocol keeps its websockets protocol in cycles of its own (above).
    kinds = PER_CONNECTION if ws_protocol == "netrun" else {"netrun_ws.connection.Connection"}
    return Counter(name for obj in gc.get_objects() if (name := _qualname(obj)) in kinds)


def _ours(garbage: list[object], ws_protocol: str) -> Counter[str]:
    # Under uvicorn's own websocket protocol, uvicorn's protocol object sits in cycles of its
    # own and keeps the transport under it (netrun-ws's guard) with it: that one is uvicorn's.
    skip = "netrun_ws.transport." if ws_protocol == "uvicorn" else "-"
    return Counter(
        _qualname(obj)
        for obj in garbage
        if type(obj).__module__.startswith("netrun_ws")
        and not type(obj).__module__.startswith(skip)
    )


async def test_closed_connections_leave_nothing_to_the_cyclic_collector(
    served_ws_protocol: str,
) -> None:
    ws_protocol = served_ws_protocol  # both protocols (tests/host/conftest.py)
    config = {
        "plugins_dir": str(ROOT / "plugins"),
        "plugins": ["chat"],
        "heartbeat": {"plugin": "ping", "interval": 0.05, "timeout": 5},
        "limits": {"max_consecutive_errors": 2},
    }
    async with serve(config, ws_protocol=ws_protocol) as served:
        await asyncio.gather(*(_churn(served.ws_url(f"warm{i}"), i) for i in range(5)))
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            await asyncio.gather(
                *(_churn(served.ws_url(f"user{i}"), i) for i in range(CONNECTIONS))
            )
            # Refused before accept (a wrong path) and closed by the server (4000: invalid
            # messages in a row).
            with pytest.raises(websockets.InvalidStatus):
                async with websockets.connect(f"ws://{served.addr}/nowhere"):
                    pass
            async with websockets.connect(served.ws_url("closer")) as client:
                await client.recv()
                await client.send("{not json")
                await client.send("{not json")
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(client.recv(), 5)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
            await asyncio.sleep(0.2)  # heartbeats and closes run out
            alive = _alive_per_connection(ws_protocol)
            gc.collect()
            cyclic = _ours(gc.garbage, ws_protocol)
        finally:
            gc.enable()
            gc.set_debug(0)
            gc.garbage.clear()
    assert not cyclic, f"left in reference cycles by {CONNECTIONS + 2} connections: {cyclic}"
    assert not alive, f"alive after {CONNECTIONS + 2} connections closed: {alive}"
