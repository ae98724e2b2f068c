"""Every hookspec is fired by a real server scenario: a new hook without a test fails here."""

from __future__ import annotations

import json

import pytest
import websockets
from websockets.asyncio.client import connect

from netrun_ws import create_app
from netrun_ws.hookspecs import all_hook_names
from tests.host.helpers import RECORDING, base_config, recv_json, recv_until
from tests.host.manual_heartbeat import heartbeat_by_hand, passes_until_gone
from tests.support.server import serve


async def test_every_hookspec_fires(monkeypatch: pytest.MonkeyPatch) -> None:
    passes = heartbeat_by_hand(monkeypatch)  # no pass before the silent client below
    plugin = {"plugin": RECORDING, "reject_user": "mallory", "fail_on_text": "boom"}
    heartbeat = {"plugin": "ping", "interval": 5, "timeout": 3600, "max_missed": 2}
    store = {"plugin": "tests.host.gap_store"}
    app = create_app(base_config(plugins=[plugin], heartbeat=heartbeat, store=store))
    async with serve(app) as addr:
        with pytest.raises(websockets.InvalidStatus):
            async with connect(f"ws://{addr}/ws?user_id=mallory"):
                pass
        async with connect(f"ws://{addr}/ws?user_id=not%20valid") as refused:
            with pytest.raises(websockets.ConnectionClosed):
                await recv_json(refused)
            assert refused.close_code == 1008
        async with connect(f"ws://{addr}/ws?user_id=alice") as client:
            await recv_until(client, "connect")
            await app.state.host.store.simulate_gap()
            gap = await recv_until(client, "delivery_gap")
            assert gap["until"] - gap["since"] == pytest.approx(1.5)
            for text in ("hi", "join", "deny", "leave", "secret", "boom"):
                await client.send(json.dumps({"type": "shout", "text": text}))
            await client.send("not json")
            await recv_until(client, "error")  # the handler_error of "boom"
            await client.send(json.dumps({"type": "refresh", "token": "good-alice"}))
            assert (await recv_until(client, "refreshed"))["expires_at"] == 9e9
        async with connect(f"ws://{addr}/ws?user_id=bob") as bob:
            await recv_until(bob, "connect")
            await app.state.host.revoke_user("bob", "logged out")
            with pytest.raises(websockets.ConnectionClosed):
                await recv_json(bob)
            assert bob.close_code == 1008 and bob.close_reason == "logged out"
        async with connect(f"ws://{addr}/ws?user_id=alice") as client:
            silent_id = (await recv_until(client, "connect"))["connection_id"]
            # Silent: heartbeat misses, then stale.
            await passes_until_gone(passes, app.state.host, silent_id)
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await recv_json(client)
    fired = {name for name, _ in app.state.host.state["events"]}
    assert all_hook_names() - fired == set()
