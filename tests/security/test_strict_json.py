"""Everything the server sends is strict JSON (issue 15, point 8).

``NaN``, ``Infinity`` and ``-Infinity`` are what Python and pydantic write for non-finite
floats, and what strict JSON parsers (browsers' ``JSON.parse`` included) refuse. So:

- the publish API answers 422 for ``data`` holding one (also a number too large for a float,
  which parses as infinity), at any depth, and nothing is sent;
- a plugin reply that holds one is the plugin's failure: the client gets ``handler_error``, the
  connection goes on;
- ``encode_message`` raises ``TypeError`` for one, as for anything else JSON cannot represent.

Every frame the clients receive is parsed with a strict parser.
"""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ConfigDict
from websockets.asyncio.client import ClientConnection, connect

from netrun_ws import create_app
from netrun_ws.wire import encode_message
from tests.host.helpers import base_config
from tests.support.server import serve

pytestmark = pytest.mark.timeout(60)
served = pytest.mark.usefixtures("served_ws_protocol")

API_KEY = "strict-json-test-api-key-0123456789"
LOOSE = "tests.security.loose_reply_plugin"
#: JSON texts that Python's and pydantic's parsers read as non-finite floats.
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "123e99999"]
NOT_STRICT = {
    "error": "invalid body",
    "details": [
        {
            "loc": ["data"],
            "msg": "NaN, Infinity and numbers too large for a float are not JSON",
            "type": "json_invalid",
        }
    ],
}


def _refuse(name: str) -> Any:
    raise AssertionError(f"the server sent the non-JSON constant {name}")


async def strict_recv(client: ClientConnection) -> dict[str, Any]:
    """The next frame, parsed as strict JSON (no NaN/Infinity, which a browser would refuse)."""
    frame = await client.recv(decode=True)
    message: dict[str, Any] = json.loads(frame, parse_constant=_refuse)
    return message


def nested(raw: str) -> list[str]:
    """``raw`` at the top of ``data``, inside a list, and deep inside objects."""
    return [
        f'{{"type": "t", "v": {raw}}}',
        f'{{"type": "t", "v": [1, 2, {raw}]}}',
        f'{{"type": "t", "a": {{"b": [{{"c": {{"d": {raw}}}}}]}}}}',
    ]


@served
async def test_the_publish_api_refuses_non_finite_numbers_with_422() -> None:
    config = base_config(server={"path": "/ws", "api_key": API_KEY})
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    async with serve(create_app(config)) as addr:
        async with (
            connect(f"ws://{addr}/ws?user_id=ann") as client,
            httpx.AsyncClient(base_url=f"http://{addr}", headers=headers) as http,
        ):
            assert (await strict_recv(client))["type"] == "connect"
            for raw in NON_FINITE:
                for data in nested(raw):
                    for target in ('"user": "ann"', '"room": "r"', '"broadcast": true'):
                        body = f'{{{target}, "data": {data}}}'
                        answer = await http.post("/api/publish", content=body)
                        assert answer.status_code == 422, body
                        # One fixed answer, whatever the input: nothing of it is echoed.
                        assert answer.json() == NOT_STRICT
            # Words are not numbers: these go out, and are the first thing the client gets
            # (none of the refused bodies reached it).
            body = (
                '{"user": "ann", "data": {"type": "t", "v": "NaN", "w": ["Infinity"], "x": 1e300}}'
            )
            answer = await http.post("/api/publish", content=body)
            assert answer.status_code == 200 and answer.json()["local"] == 1
            received = await strict_recv(client)
            # The user channel's first message: none of the refused bodies took an offset.
            assert received.pop("pos")["offset"] == 1
            assert received == {
                "type": "t",
                "v": "NaN",
                "w": ["Infinity"],
                "x": 1e300,
            }


@served
@pytest.mark.parametrize("as_model", [False, True])
async def test_a_plugin_reply_with_a_non_finite_float_is_a_handler_error(as_model: bool) -> None:
    async with serve(create_app(base_config(plugins=[LOOSE]))) as addr:
        async with connect(f"ws://{addr}/ws?user_id=ann") as client:
            assert (await strict_recv(client))["type"] == "connect"
            for value in ("nan", "inf", "-inf", "1e400"):
                for deep in (False, True):
                    request = {"type": "measure", "value": value, "nested": deep}
                    await client.send(json.dumps({**request, "as_model": as_model}))
                    reply = await strict_recv(client)
                    assert reply["type"] == "error" and reply["code"] == "handler_error", reply
                    assert "loose_reply_plugin" in reply["error"]
            # The connection goes on, and a finite float is sent as a number.
            await client.send(json.dumps({"type": "measure", "value": "1.5", "as_model": as_model}))
            assert await strict_recv(client) == {"type": "measured", "value": 1.5}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("binary", [False, True])
def test_encode_message_refuses_non_finite_floats_anywhere(value: float, binary: bool) -> None:
    class Reading(BaseModel):
        model_config = ConfigDict(ser_json_inf_nan="constants")  # pydantic's default is null

        value: Any

    for message in (
        {"v": value},
        [1, [2, {"v": value}]],
        ("t", value),
        Reading(value=value),
        {"m": Reading(value=[value])},
    ):
        with pytest.raises(TypeError, match="strict JSON"):
            encode_message(message, binary=binary)


@pytest.mark.parametrize("binary", [False, True])
def test_encode_message_keeps_the_words_nan_and_infinity(binary: bool) -> None:
    message = {"NaN": "NaN", "Infinity": ["-Infinity", "I", "N"], "n": 1e308, "x": -0.0}
    frame = encode_message(message, binary=binary)
    assert json.loads(frame, parse_constant=_refuse) == message
