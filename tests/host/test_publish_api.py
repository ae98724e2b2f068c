"""POST <api_prefix>/publish on a single node (memory store), over a real server."""

from __future__ import annotations

import json

import httpx
from websockets.asyncio.client import connect

from netrun_ws import create_app
from tests.host.helpers import base_config, recv_json, recv_until
from tests.support.server import serve

KEY = "publish-api-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


async def test_publish_to_user_room_and_broadcast() -> None:
    config = base_config(server={"api_key": KEY}, plugins=["chat"], plugins_dir="plugins")
    async with (
        serve(create_app(config)) as addr,
        httpx.AsyncClient(base_url=f"http://{addr}") as http,
    ):
        url = f"ws://{addr}/ws"
        async with connect(f"{url}?user_id=ann") as ann, connect(f"{url}?user_id=ben") as ben:
            await recv_json(ann)
            await recv_json(ben)
            await ben.send(json.dumps({"type": "join", "room": "news"}))
            await recv_until(ben, "joined")

            answer = await http.post(
                "/api/publish", headers=AUTH, json={"user": "ann", "data": {"type": "hi"}}
            )
            assert answer.status_code == 200
            assert answer.json() == {"local": 1, "remote_nodes": 0}
            assert await recv_until(ann, "hi") == {"type": "hi"}

            answer = await http.post(
                "/api/publish", headers=AUTH, json={"room": "news", "data": {"type": "story"}}
            )
            assert answer.json()["local"] == 1
            assert await recv_until(ben, "story") == {"type": "story"}

            body = {"broadcast": True, "exclude_users": ["ann"], "data": {"type": "all"}}
            answer = await http.post("/api/publish", headers=AUTH, json=body)
            assert answer.json()["local"] == 1
            assert await recv_until(ben, "all") == {"type": "all"}

            answer = await http.post(
                "/api/publish", headers=AUTH, json={"user": "nobody", "data": {"type": "x"}}
            )
            assert answer.json() == {"local": 0, "remote_nodes": 0}


async def test_publish_refuses_without_the_key_and_explains_bad_bodies() -> None:
    async with serve(create_app(base_config(server={"api_key": KEY}))) as addr:
        async with httpx.AsyncClient(base_url=f"http://{addr}") as http:
            body = {"user": "ann", "data": {"type": "hi"}}
            assert (await http.post("/api/publish", json=body)).status_code == 401
            wrong = {"Authorization": "Bearer nope"}
            assert (await http.post("/api/publish", json=body, headers=wrong)).status_code == 401
            for bad in (
                {"data": {"type": "x"}},
                {"user": "a", "room": "b", "data": {}},
                {"user": "a"},
                {"user": "a", "data": [1, 2]},
                {"user": "a", "data": {}, "extra": 1},
            ):
                answer = await http.post("/api/publish", json=bad, headers=AUTH)
                assert answer.status_code == 422, bad
                assert answer.json()["error"] == "invalid body"
                assert answer.json()["details"]
            answer = await http.post("/api/publish", content=b"{not json", headers=AUTH)
            assert answer.status_code == 422


async def test_publish_api_is_absent_without_a_key() -> None:
    async with serve(create_app(base_config())) as addr:
        async with httpx.AsyncClient(base_url=f"http://{addr}") as http:
            answer = await http.post("/api/publish", json={"broadcast": True, "data": {}})
            assert answer.status_code == 404


async def test_a_returning_session_gets_its_state_and_rooms_back() -> None:
    config = base_config(plugins=["chat"], plugins_dir="plugins")
    app = create_app(config)
    async with serve(app) as addr:
        url = f"ws://{addr}/ws?user_id=cat&session_id=cats-session"
        async with connect(url) as first:
            welcome = await recv_json(first)
            assert welcome["resumed"] is False and welcome["session_id"] == "cats-session"
            await first.send(json.dumps({"type": "join", "room": "den"}))
            await recv_until(first, "joined")
            host = app.state.host
            connection = host.connection(welcome["connection_id"])
            connection.metadata["state"]["cursor"] = 42
        async with connect(url) as second:
            welcome = await recv_json(second)
            assert welcome["resumed"] is True
            assert welcome["state"] == {"cursor": 42}
            assert welcome["rooms"] == ["den"]
        async with connect(f"ws://{addr}/ws?user_id=cat") as fresh:
            assert (await recv_json(fresh))["resumed"] is False
