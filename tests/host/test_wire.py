"""netrun_ws.wire: a plugin's error replies look exactly like the host's own, over a real server."""

from __future__ import annotations

import json
from pathlib import Path

from netrun_ws import ErrorCode
from netrun_ws.testing import Serve
from netrun_ws.wire import encode_message, error_reply

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


async def test_the_chat_plugins_refusal_matches_the_hosts_own_error_reply(
    netrun_serve: Serve,
) -> None:
    server = await netrun_serve({"plugins_dir": str(PLUGINS), "plugins": ["chat"]})
    client = await server.connect("ann")
    await client.send({"type": "no_such_type"})
    hosts = await client.expect_error(ErrorCode.UNKNOWN_TYPE)
    await client.send({"type": "say", "room": "lobby", "text": "hi"})
    plugins = await client.expect_error(ErrorCode.FORBIDDEN)
    assert plugins == error_reply(ErrorCode.FORBIDDEN, "join 'lobby' before saying anything")
    assert plugins.keys() == hosts.keys()
