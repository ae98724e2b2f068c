"""Error replies never echo input beyond a bound (issue 15, point 9).

A 20,000-character unknown key once came back whole in a 20 KB ``validation_failed`` reply. Every
piece of the client's input an error detail may carry (a field name in ``loc``, a dict key, a
nested union's tag in ``msg``/``ctx``, an unknown ``type``, a JSON error reason) is cut to
``MAX_ECHO_CHARS``; a ``loc`` keeps ``MAX_LOC_PARTS`` parts and the error list stops at
``MAX_DETAILS_CHARS``, so a reply stays small whatever the frame held. The publish API's 422
details follow the same rules.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from netrun_ws import create_app
from netrun_ws.protocol import MAX_DETAILS_CHARS, MAX_ECHO_CHARS, MAX_LOC_PARTS
from tests.host.helpers import base_config, recv_json
from tests.support.server import serve

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("served_ws_protocol")]

SHAPES = "tests.security.shapes_plugin"
API_KEY = "error-echo-test-api-key-0123456789"
MAX_MESSAGE_BYTES = 1_000_000
#: No reply may be longer than this: the details budget plus the reply's own fields.
REPLY_BOUND = MAX_DETAILS_CHARS + 1024
LONG = 20_000


def long(mark: str, size: int = LONG) -> str:
    return mark * size


def deep_tree(key: str, depth: int) -> Any:
    tree: Any = "not a list"
    for _ in range(depth):
        tree = {key: tree}
    return tree


#: name -> (the message, the repeated character its long input is made of, the expected code)
ATTACKS: dict[str, tuple[Callable[[], Any], str, str]] = {
    "unknown key": (lambda: {"type": "shapes", long("k"): 1}, "k", "validation_failed"),
    "many unknown keys": (
        lambda: {"type": "shapes", **{f"{i:04}" + long("m", 1000): 1 for i in range(500)}},
        "m",
        "validation_failed",
    ),
    "dict key with a bad value": (
        lambda: {"type": "shapes", "counts": {long("d"): "x"}},
        "d",
        "validation_failed",
    ),
    "many dict keys with bad values": (
        lambda: {"type": "shapes", "counts": {f"{i:04}" + long("e", 500): "x" for i in range(500)}},
        "e",
        "validation_failed",
    ),
    "deeply nested dict keys": (
        lambda: {"type": "shapes", "tree": deep_tree(long("n", 3000), 5)},
        "n",
        "validation_failed",
    ),
    "nested union tag": (
        lambda: {"type": "shapes", "shape": {"kind": long("t")}},
        "t",
        "validation_failed",
    ),
    "pattern mismatch": (
        lambda: {"type": "shapes", "label": long("p")},
        "p",
        "validation_failed",
    ),
    "unknown type": (lambda: {"type": long("u")}, "u", "unknown_type"),
}


def assert_bounded(frame: str, mark: str) -> None:
    assert len(frame) <= REPLY_BOUND, len(frame)
    assert mark * (MAX_ECHO_CHARS + 1) not in frame


@pytest.mark.parametrize("name", list(ATTACKS))
async def test_error_replies_echo_no_input_beyond_the_bound(name: str) -> None:
    build, mark, code = ATTACKS[name]
    config = base_config(plugins=[SHAPES], limits={"max_message_bytes": MAX_MESSAGE_BYTES})
    async with serve(create_app(config), ws_max_size=MAX_MESSAGE_BYTES) as addr:
        async with connect(f"ws://{addr}/ws?user_id=ann", max_size=None) as client:
            await recv_json(client)
            await client.send(json.dumps(build()))
            frame = await client.recv(decode=True)
            reply = json.loads(frame)
            assert reply["type"] == "error" and reply["code"] == code, reply
            assert_bounded(frame, mark)
            if code == "validation_failed":
                errors = reply["details"]["errors"]
                assert errors, "at least one error is always reported"
                assert all(len(error["loc"]) <= MAX_LOC_PARTS for error in errors)
            # The connection goes on.
            await client.send(json.dumps({"type": "shapes", "label": "ok"}))
            assert (await recv_json(client))["type"] == "shaped"


async def test_invalid_json_reasons_are_bounded() -> None:
    config = base_config(plugins=[SHAPES], limits={"max_message_bytes": MAX_MESSAGE_BYTES})
    async with serve(create_app(config), ws_max_size=MAX_MESSAGE_BYTES) as addr:
        async with connect(f"ws://{addr}/ws?user_id=ann", max_size=None) as client:
            await recv_json(client)
            for frame in (
                '{"type": "shapes", "' + long("j") + "\x01",
                '{"type": "shapes", "v": NaN, "' + long("j") + '": 1}',
                "[" * 300 + long("j"),
            ):
                await client.send(frame)
                reply_frame = await client.recv(decode=True)
                assert json.loads(reply_frame)["code"] == "invalid_json"
                assert_bounded(reply_frame, "j")


async def test_publish_api_422_details_are_bounded() -> None:
    config = base_config(
        server={"path": "/ws", "api_key": API_KEY}, limits={"max_message_bytes": MAX_MESSAGE_BYTES}
    )
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with serve(create_app(config)) as addr:
        async with httpx.AsyncClient(base_url=f"http://{addr}", headers=headers) as http:
            bodies = [
                {"user": "ann", "data": {}, long("k"): 1},
                {"user": "ann", "data": {}, **{f"{i:04}" + long("k", 1000): 1 for i in range(500)}},
                {"user": long("k"), "data": {}},
            ]
            for body in bodies:
                answer = await http.post("/api/publish", json=body)
                assert answer.status_code == 422
                assert_bounded(answer.text, "k")
