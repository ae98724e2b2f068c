"""docs/recipes.md's code does what the page says, on a served app.

tests/docs/test_examples.py runs every example (the recipes' functions are defined, the plugin
loads); here the publish helpers push to a connected client through the real publish API, and
the paced chat plugin answers a burst of `say` with `rate_limited` past its bucket.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun_ws.testing import Serve
from tests.docs.test_examples import ROOT, read

RECIPES = read(ROOT / "docs" / "recipes.md")
API_KEY = "recipes-api-key-0123456789abcdef"


def content(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` without its history position (the server adds ``pos``)."""
    return {key: value for key, value in message.items() if key != "pos"}


async def test_the_publish_helpers_reach_a_user_and_a_room(
    netrun_serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await netrun_serve({"server": {"path": "/ws", "api_key": API_KEY}})
    monkeypatch.setenv("NETRUN_WS_URL", server.http_url)
    monkeypatch.setenv("NETRUN_WS_API_KEY", API_KEY)
    helpers: dict[str, Any] = {}
    exec(compile("\n\n".join(RECIPES.script), "docs/recipes.md", "exec"), helpers)

    ann = await server.connect("ann")
    # notify_user is the blocking version (a Django view): off the event loop the server runs on.
    local = await asyncio.to_thread(helpers["notify_user"], "ann", {"type": "notice", "n": 1})
    assert local == 1
    assert content(await ann.expect("notice")) == {"type": "notice", "n": 1}

    connection = server.host.connection(ann.connection_id)
    assert connection is not None
    await server.host.join_room(connection, "lobby")
    async with httpx.AsyncClient() as client:
        await helpers["notify_room"](client, "lobby", {"type": "notice", "n": 2})
    assert content(await ann.expect("notice")) == {"type": "notice", "n": 2}

    monkeypatch.setenv("NETRUN_WS_API_KEY", "not-the-key-0123456789abcdef")
    exec(compile("\n\n".join(RECIPES.script), "docs/recipes.md", "exec"), helpers)
    with pytest.raises(httpx.HTTPStatusError, match="401"):
        await asyncio.to_thread(helpers["notify_user"], "ann", {"type": "notice"})


async def test_the_paced_chat_plugin_refuses_a_burst_past_its_bucket(
    netrun_serve: Serve, tmp_path: Path
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "paced_chat.py").write_text(RECIPES.files["plugins/paced_chat.py"])
    server = await netrun_serve(
        {
            "plugins_dir": str(plugins),
            "plugins": ["paced_chat"],
            "limits": {"messages_per_second": 0},  # the connection-wide limit off: only the bucket
        }
    )
    client = await server.connect("bea")
    connection = server.host.connection(client.connection_id)
    assert connection is not None
    await server.host.join_room(connection, "lobby")

    sent = 30
    started = time.monotonic()
    for n in range(sent):
        await client.send({"type": "say", "room": "lobby", "text": f"line {n}"})
    replies = [await client.recv() for _ in range(sent)]
    elapsed = time.monotonic() - started
    said = [r for r in replies if r["type"] == "said"]
    refused = [r for r in replies if r["type"] == "error"]
    assert len(said) + len(refused) == sent
    assert all(r["code"] == "rate_limited" for r in refused)
    # A burst of 10, then 5 per second: what the recipe promises, whatever the machine's speed.
    assert 10 <= len(said) <= 10 + 5 * elapsed + 1
    assert refused, f"30 messages in {elapsed:.2f} s were all accepted"
    assert content(said[0]) == {"type": "said", "room": "lobby", "user_id": "bea", "text": "line 0"}
