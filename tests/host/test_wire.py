"""netrun_ws.wire: a plugin's error replies look exactly like the host's own, over a real server."""

from __future__ import annotations

import json
from pathlib import Path

from websockets.asyncio.client import connect

from netrun_ws import ErrorCode, create_app
from netrun_ws.wire import encode_message, error_reply
from tests.host.helpers import base_config, recv_json
from tests.support.server import serve

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def test_error_reply_is_the_documented_shape() -> None:
    assert error_reply(ErrorCode.NOT_FOUND, "no such room") == {
        "type": "error",
        "error": "no such room",
        "code": "not_found",
        "details": None,
    }
    reply = error_reply("quota", "over quota", {"limit": 3})
    assert json.loads(encode_message(reply)) == reply


async def test_the_chat_plugins_refusal_matches_the_hosts_own_error_reply() -> None:
    config = base_config(plugins_dir=str(PLUGINS), plugins=["chat"])
    async with serve(create_app(config)) as addr:
        async with connect(f"ws://{addr}/ws?user_id=ann") as client:
            await recv_json(client)  # the welcome
            await client.send(json.dumps({"type": "no_such_type"}))
            hosts = await recv_json(client)
            await client.send(json.dumps({"type": "say", "room": "lobby", "text": "hi"}))
            plugins = await recv_json(client)
    assert hosts["type"] == "error" and hosts["code"] == ErrorCode.UNKNOWN_TYPE
    assert plugins == error_reply(ErrorCode.FORBIDDEN, "join 'lobby' before saying anything")
    assert plugins.keys() == hosts.keys()
