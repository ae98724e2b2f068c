"""An upgrade to a path with no WebSocket endpoint gets 404 with a JSON ``{"error"}`` body, as
docs/protocol.md says (issue 15, point 10), under both ``server.ws_protocol`` values; the path
is not echoed, and the server's own endpoint and plain HTTP are unchanged."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from netrun_ws import create_app
from tests.host.helpers import base_config, recv_json
from tests.support.server import serve

pytestmark = pytest.mark.timeout(60)

WRONG_PATHS = [
    "/",
    "/wss",
    "/ws/",
    "/WS",
    "/ws/extra",
    "/ws%2Fextra",
    "/healthz",  # an HTTP route is no WebSocket endpoint
    "/readyz?user_id=ann",
    "/api/publish",
    "/" + "x" * 2000,
    "/%F0%9F%90%8D",
]


@pytest.mark.parametrize("ws_protocol", ["netrun", "uvicorn"])
async def test_an_upgrade_to_an_unknown_path_is_404_with_a_json_error(ws_protocol: str) -> None:
    config = base_config(server={"path": "/ws", "ws_protocol": ws_protocol, "api_key": "k" * 20})
    async with serve(create_app(config)) as addr:
        for path in WRONG_PATHS:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(f"ws://{addr}{path}"):
                    pass
            response = refused.value.response
            assert response.status_code == 404, path
            assert response.headers["content-type"] == "application/json"
            assert json.loads(response.body) == {"error": "not found"}
        # The endpoint itself and plain HTTP are unchanged.
        async with connect(f"ws://{addr}/ws?user_id=ann") as client:
            assert (await recv_json(client))["type"] == "connect"
        async with httpx.AsyncClient(base_url=f"http://{addr}") as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/nowhere")).status_code == 404
