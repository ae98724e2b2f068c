"""The host suite really runs under both protocols (tests/host/conftest.py)."""

from __future__ import annotations

from websockets.asyncio.client import connect

from netrun_ws import create_app
from netrun_ws.transport.websocket import NetrunWebSocketProtocol
from tests.host.helpers import ECHO, base_config, only_connection, recv_json
from tests.support.server import serve


async def test_an_app_that_names_no_protocol_is_served_with_the_tests_one(
    served_ws_protocol: str,
) -> None:
    app = create_app(base_config(plugins=[ECHO]))
    async with serve(app) as addr, connect(f"ws://{addr}/ws?user_id=u") as client:
        assert (await recv_json(client))["type"] == "connect"
        direct = only_connection(app).direct
    if served_ws_protocol == "netrun":
        assert isinstance(direct, NetrunWebSocketProtocol)
    else:
        assert direct is None  # uvicorn's own protocol: plain ASGI
