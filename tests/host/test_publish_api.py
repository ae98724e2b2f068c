"""POST <api_prefix>/publish on a single node (memory store), served through netrun_ws.testing."""

from __future__ import annotations

import httpx

from netrun_ws.testing import Serve, ServedApp

KEY = "publish-api-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = {"plugins": ["chat"], "plugins_dir": "plugins"}


async def test_publish_to_user_room_and_broadcast(netrun_serve: Serve) -> None:
    server = await netrun_serve({"server": {"api_key": KEY}, **CHAT})
    ann, ben = await server.connect("ann"), await server.connect("ben")
    await ben.send({"type": "join", "room": "news"})
    await ben.skip_until("joined")
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        answer = await http.post(
            "/api/publish", headers=AUTH, json={"user": "ann", "data": {"type": "hi"}}
        )
        assert answer.status_code == 200
        assert answer.json() == {"local": 1, "remote_nodes": 0}
        hi = await ann.skip_until("hi")
        assert hi.pop("pos")["channel"] == "user:ann"  # a user message has a position
        assert hi == {"type": "hi"}

        answer = await http.post(
            "/api/publish", headers=AUTH, json={"room": "news", "data": {"type": "story"}}
        )
        assert answer.json()["local"] == 1
        story = await ben.skip_until("story")
        assert story.pop("pos")["channel"] == "room:news"
        assert story == {"type": "story"}

        body = {"broadcast": True, "exclude_users": ["ann"], "data": {"type": "all"}}
        answer = await http.post("/api/publish", headers=AUTH, json=body)
        assert answer.json()["local"] == 1
        assert await ben.skip_until("all") == {"type": "all"}  # a broadcast has none

        answer = await http.post(
            "/api/publish", headers=AUTH, json={"user": "nobody", "data": {"type": "x"}}
        )
        assert answer.json() == {"local": 0, "remote_nodes": 0}


async def test_publish_refuses_without_the_key_and_explains_bad_bodies(
    netrun_serve: Serve,
) -> None:
    server = await netrun_serve({"server": {"api_key": KEY}})
    async with httpx.AsyncClient(base_url=server.http_url) as http:
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


async def test_publish_api_is_absent_without_a_key(netrun_server: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=netrun_server.http_url) as http:
        answer = await http.post("/api/publish", json={"broadcast": True, "data": {}})
        assert answer.status_code == 404


async def test_a_returning_session_gets_its_state_and_rooms_back(netrun_serve: Serve) -> None:
    server = await netrun_serve(CHAT)
    first = await server.connect("cat", session_id="cats-session")
    assert first.welcome["resumed"] is False and first.session_id == "cats-session"
    await first.send({"type": "join", "room": "den"})
    await first.skip_until("joined")
    connection = server.host.connection(first.connection_id)
    assert connection is not None
    connection.metadata["state"]["cursor"] = 42
    await first.close()
    second = await server.connect("cat", session_id="cats-session")
    assert second.welcome["resumed"] is True
    assert second.welcome["state"] == {"cursor": 42}
    assert second.welcome["rooms"] == ["den"]
    await second.close()
    fresh = await server.connect("cat")
    assert fresh.welcome["resumed"] is False
