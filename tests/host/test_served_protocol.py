"""The host suite really runs under both protocols (tests/host/conftest.py), netrun_ws.testing's
servers included."""

from __future__ import annotations

from netrun_ws.testing import Serve
from netrun_ws.transport.websocket import NetrunWebSocketProtocol
from tests.host.helpers import ECHO, only_connection


async def test_an_app_that_names_no_protocol_is_served_with_the_tests_one(
    served_ws_protocol: str, netrun_serve: Serve
) -> None:
    server = await netrun_serve({"plugins": [ECHO]})
    await server.connect("u")
    direct = only_connection(server.app).direct
    if served_ws_protocol == "netrun":
        assert isinstance(direct, NetrunWebSocketProtocol)
    else:
        assert direct is None  # uvicorn's own protocol: plain ASGI
