"""The host's own messages on a real server match their models in netrun_ws/contracts/messages.py,
the single description the AsyncAPI document and the TypeScript declarations are made from."""

from __future__ import annotations

import json
from pathlib import Path

from websockets.asyncio.client import connect

from netrun_ws import create_app
from netrun_ws.contracts.messages import Disconnect, ErrorReply, Pong, Welcome
from tests.host.helpers import base_config, recv_json, recv_until
from tests.support.server import serve

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


async def test_welcome_error_pong_and_resumed_welcome_match_their_models() -> None:
    config = base_config(
        heartbeat={"plugin": "ping", "interval": 30},
        reconnect={"plugin": "exponential"},
        protocol={"plugin": "json"},
        plugins_dir=str(PLUGINS),
        plugins=["chat"],
    )
    async with serve(create_app(config)) as addr:
        async with connect(f"ws://{addr}/ws?user_id=ann") as client:
            first = Welcome.model_validate(await recv_json(client), strict=True)
            await client.send("not json")
            ErrorReply.model_validate(await recv_json(client), strict=True)
            await client.send(json.dumps({"type": "ping"}))
            Pong.model_validate(await recv_until(client, "pong"), strict=True)
            await client.send(json.dumps({"type": "join", "room": "lobby"}))
            await recv_until(client, "joined")
        resume = f"ws://{addr}/ws?user_id=ann&session_id={first.session_id}"
        async with connect(resume) as client:
            again = Welcome.model_validate(await recv_json(client), strict=True)
    assert first.heartbeat is not None and first.reconnect is not None and not first.resumed
    assert again.resumed and again.rooms == ["lobby"] and again.state is not None


async def test_the_drain_hint_matches_its_model() -> None:
    app = create_app(base_config())
    async with serve(app) as addr:
        async with connect(f"ws://{addr}/ws?session_id=s-2") as client:
            await recv_json(client)
            await app.state.host.drain(timeout=5)
            hint = Disconnect.model_validate(await recv_json(client), strict=True)
    assert hint.code == 1012 and hint.session_id == "s-2"
