"""History and recovery on the memory store, over a real server and real clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from netrun_ws import create_app
from tests.history.helpers import (
    AUTH,
    chat_config,
    close_reading,
    last_positions,
    next_message,
    open_client,
    read_until,
)
from tests.host.helpers import recv_until, wait_for
from tests.support.server import serve

pytestmark = pytest.mark.timeout(60)


async def publish(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await http.post("/api/publish", headers=AUTH, json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def join(websocket: Any, room: str) -> None:
    await websocket.send(json.dumps({"type": "join", "room": room}))
    await recv_until(websocket, "joined")


async def test_room_user_and_publish_api_messages_carry_positions() -> None:
    app = create_app(chat_config())
    async with serve(app) as addr, httpx.AsyncClient(base_url=f"http://{addr}") as http:
        ann, welcome = await open_client(addr, "ann")
        epoch = welcome["positions"]["user:ann"]["epoch"]
        assert welcome["positions"] == {"user:ann": {"offset": 0, "epoch": epoch}}
        await join(ann, "news")
        await publish(http, room="news", data={"type": "story", "n": 1})
        await publish(http, user="ann", data={"type": "note"})
        await app.state.host.publish_room("news", {"type": "story", "n": 2})
        await app.state.host.send_to_user("ann", {"type": "note"})
        await app.state.host.broadcast({"type": "all"})
        got = [await next_message(ann) for _ in range(5)]
        pos = [message.get("pos") for message in got]
        # The chat plugin's user_joined took room offset 1 (sent to the others in the room).
        assert pos == [
            {"channel": "room:news", "offset": 2, "epoch": epoch},
            {"channel": "user:ann", "offset": 1, "epoch": epoch},
            {"channel": "room:news", "offset": 3, "epoch": epoch},
            {"channel": "user:ann", "offset": 2, "epoch": epoch},
            None,  # a broadcast has no channel
        ]
        assert got[0] == {"pos": pos[0], "type": "story", "n": 1}
        await ann.close()


async def test_a_message_with_its_own_pos_key_is_refused() -> None:
    app = create_app(chat_config())
    async with serve(app) as addr, httpx.AsyncClient(base_url=f"http://{addr}") as http:
        with pytest.raises(ValueError, match="'pos'"):
            await app.state.host.publish_room("news", {"type": "x", "pos": 1})
        with pytest.raises(ValueError, match="'pos'"):
            await app.state.host.send_to_user("ann", {"type": "x", "pos": 1})
        answer = await http.post(
            "/api/publish", headers=AUTH, json={"room": "r", "data": {"pos": 1}}
        )
        assert answer.status_code == 422
        assert "pos" in json.dumps(answer.json()["details"])


async def test_history_off_for_a_kind_gives_no_positions() -> None:
    app = create_app(chat_config(rooms_enabled=False, users_enabled=False))
    async with serve(app) as addr:
        ann, welcome = await open_client(addr, "ann")
        assert "positions" not in welcome
        await join(ann, "news")
        await app.state.host.publish_room("news", {"type": "story"})
        assert await next_message(ann) == {"type": "story"}
        await ann.close()


@pytest.mark.parametrize("kind", ["rooms", "users"])
async def test_history_off_for_one_kind_leaves_the_other_on(kind: str) -> None:
    app = create_app(chat_config(**{f"{kind}_enabled": False}))
    host = app.state.host
    async with serve(app) as addr:
        ann, welcome = await open_client(addr, "ann")
        await join(ann, "news")
        await host.publish_room("news", {"type": "story"})
        await host.send_to_user("ann", {"type": "note"})
        story, note = await next_message(ann), await next_message(ann)
        await ann.close()
    if kind == "rooms":
        assert set(welcome["positions"]) == {"user:ann"}
        assert "pos" not in story and note["pos"]["channel"] == "user:ann"
    else:
        assert "positions" not in welcome  # rooms joined later get theirs in `pos`
        assert story["pos"]["channel"] == "room:news" and "pos" not in note


async def test_resume_replays_missed_messages_in_order_then_live() -> None:
    app = create_app(chat_config())
    host = app.state.host
    async with serve(app) as addr:
        ann, welcome = await open_client(addr, "ann")
        session = welcome["session_id"]
        await join(ann, "news")
        await host.publish_room("news", {"type": "story", "n": 1})
        await host.send_to_user("ann", {"type": "note", "n": 1})
        seen = [await next_message(ann) for _ in range(2)]
        await ann.close()
        await wait_for(lambda: len(host.manager) == 0)
        for n in range(2, 6):
            await host.publish_room("news", {"type": "story", "n": n})
        await host.send_to_user("ann", {"type": "note", "n": 2})

        ann, welcome = await open_client(addr, "ann", session, last_positions(seen))
        assert welcome["resumed"] is True and welcome["rooms"] == ["news"]
        epoch = welcome["positions"]["room:news"]["epoch"]
        # The chat plugin's user_left (at the close) and user_joined (at the rejoin) are room
        # messages too: the top counts them.
        top = welcome["positions"]["room:news"]["offset"]
        assert top == 8
        assert welcome["positions"]["user:ann"] == {"offset": 2, "epoch": epoch}
        await host.publish_room("news", {"type": "story", "n": 6})  # live, after the replay
        recovery = await read_until(ann, "recovered")
        stories = [m["n"] for m in recovery if m.get("type") == "story"]
        assert stories == [2, 3, 4, 5]
        room = [
            m["pos"]["offset"] for m in recovery if m.get("pos", {}).get("channel") == "room:news"
        ]
        assert room == list(range(3, top + 1))
        assert [m["n"] for m in recovery if m.get("type") == "note"] == [2]
        assert recovery[-1]["channels"] == {
            "room:news": {"offset": top, "epoch": epoch, "replayed": top - 2},
            "user:ann": {"offset": 2, "epoch": epoch, "replayed": 1},
        }
        live = await next_message(ann)
        assert live["n"] == 6 and live["pos"]["offset"] == top + 1
        await ann.close()


async def test_no_duplicate_and_no_hole_while_a_publisher_keeps_publishing() -> None:
    app = create_app(chat_config(rooms_size=5000))
    host = app.state.host
    async with serve(app) as addr:
        ann, welcome = await open_client(addr, "ann")
        session = welcome["session_id"]
        await join(ann, "feed")
        stop = asyncio.Event()
        sent = 0

        async def publisher() -> None:
            nonlocal sent
            while not stop.is_set():
                sent += 1
                await host.publish_room("feed", {"type": "tick", "n": sent})
                await asyncio.sleep(0.001 if sent % 5 else 0)

        task = asyncio.create_task(publisher())
        received: list[dict[str, Any]] = []
        for _round in range(5):
            while len([m for m in received if m.get("type") == "tick"]) < 40 * (_round + 1):
                received.append(await next_message(ann))
            await close_reading(ann, received)
            await asyncio.sleep(0.02)
            ann, _ = await open_client(addr, "ann", session, last_positions(received))
        stop.set()
        await task
        while True:
            message = await next_message(ann)
            received.append(message)
            if message.get("n") == sent:
                break
        ticks = [m["n"] for m in received if m.get("type") == "tick"]
        assert ticks == list(range(1, sent + 1))
        assert [m["type"] for m in received if m.get("type") == "gap"] == []
        await ann.close()


async def test_rooms_missing_from_since_recover_from_the_join_position() -> None:
    app = create_app(chat_config())
    host = app.state.host
    async with serve(app) as addr:
        ann, welcome = await open_client(addr, "ann")
        await join(ann, "quiet")  # the client never receives a message of this room
        await ann.close()
        await wait_for(lambda: len(host.manager) == 0)
        await host.publish_room("quiet", {"type": "story", "n": 1})
        await host.publish_room("quiet", {"type": "story", "n": 2})
        ann, _ = await open_client(addr, "ann", welcome["session_id"], {})
        recovery = await read_until(ann, "recovered")
        # The chat plugin's user_joined/user_left (sent to the others live) are history too,
        # down to the user_joined of this rejoin.
        types = ["user_joined", "user_left", "story", "story", "user_joined"]
        assert [m["type"] for m in recovery[:-1]] == types
        assert [m.get("n") for m in recovery[:-1]][2:4] == [1, 2]
        assert recovery[-1]["channels"]["room:quiet"]["replayed"] == 5
        await ann.close()


async def test_a_position_out_of_history_gets_a_gap() -> None:
    app = create_app(chat_config(rooms_size=3))
    host = app.state.host
    async with serve(app) as addr:
        ann, welcome = await open_client(addr, "ann")
        await join(ann, "news")
        await host.publish_room("news", {"type": "story", "n": 0})
        seen = [await next_message(ann)]
        await ann.close()
        await wait_for(lambda: len(host.manager) == 0)
        for n in range(1, 11):
            await host.publish_room("news", {"type": "story", "n": n})
        ann, again = await open_client(addr, "ann", welcome["session_id"], last_positions(seen))
        recovery = await read_until(ann, "recovered")
        epoch = seen[0]["pos"]["epoch"]
        top = again["positions"]["room:news"]["offset"]
        assert top > 11  # the 10 stories, and the chat plugin's user_left and user_joined
        gap = {"type": "gap", "channel": "room:news", "reason": "out_of_history"}
        assert recovery[:-1] == [{**gap, "offset": top, "epoch": epoch}]
        assert recovery[-1]["channels"]["room:news"] == {
            "offset": top,
            "epoch": epoch,
            "replayed": 0,
        }
        await host.publish_room("news", {"type": "story", "n": 11})
        assert (await next_message(ann))["pos"]["offset"] == top + 1
        await ann.close()


async def test_replay_limit_gets_a_gap() -> None:
    app = create_app(chat_config(max_replay_messages=3))
    host = app.state.host
    async with serve(app) as addr:
        ann, welcome = await open_client(addr, "ann")
        await join(ann, "news")
        await ann.close()
        await wait_for(lambda: len(host.manager) == 0)
        for n in range(5):
            await host.publish_room("news", {"type": "story", "n": n})
        ann, _ = await open_client(addr, "ann", welcome["session_id"], {})
        recovery = await read_until(ann, "recovered")
        assert [(m["type"], m.get("reason")) for m in recovery] == [
            ("gap", "replay_limit"),
            ("recovered", None),
        ]
        await ann.close()


async def test_the_replay_byte_budget_is_shared_by_the_channels_in_order() -> None:
    # 1,200 bytes for the whole resume: room:a's small stories fit, room:b's larger ones (under
    # 1,200 bytes on their own) do not fit in what is left, so room:b gets a replay_limit gap
    # and nothing of it is replayed.
    app = create_app(chat_config(max_replay_bytes=1200))
    host = app.state.host
    async with serve(app) as addr:
        ann, welcome = await open_client(addr, "ann")
        await join(ann, "a")
        await join(ann, "b")
        await ann.close()
        await wait_for(lambda: len(host.manager) == 0)
        for n in range(3):
            await host.publish_room("a", {"type": "story", "n": n})
            await host.publish_room("b", {"type": "story", "n": n, "text": "x" * 150})
        ann, again = await open_client(addr, "ann", welcome["session_id"], {})
        recovery = await read_until(ann, "recovered")
        replayed = [m for m in recovery if "pos" in m]
        assert {m["pos"]["channel"] for m in replayed} == {"room:a"}
        assert [m["n"] for m in replayed if m["type"] == "story"] == [0, 1, 2]
        assert sum(len(json.dumps(m, separators=(",", ":"))) for m in replayed) <= 1200
        top = again["positions"]["room:b"]
        assert [m for m in recovery if m["type"] == "gap"] == [
            {"type": "gap", "channel": "room:b", "reason": "replay_limit", **top}
        ]
        channels = recovery[-1]["channels"]
        assert channels["room:a"]["replayed"] == len(replayed)
        assert channels["room:b"] == {**top, "replayed": 0}
        await ann.close()


async def test_a_restarted_memory_store_changes_the_epoch() -> None:
    async with serve(create_app(chat_config())) as addr:
        ann, welcome = await open_client(addr, "ann")
        await ann.close()
    old = welcome["positions"]
    async with serve(create_app(chat_config())) as addr:
        ann, again = await open_client(addr, "ann", welcome["session_id"], old)
        recovery = await read_until(ann, "recovered")
        new_epoch = again["positions"]["user:ann"]["epoch"]
        assert new_epoch != old["user:ann"]["epoch"]
        assert recovery[0] == {
            "type": "gap",
            "channel": "user:ann",
            "reason": "epoch_changed",
            "offset": 0,
            "epoch": new_epoch,
        }
        await ann.close()


@pytest.mark.parametrize(
    ("since", "why"),
    [
        ("{nope", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"lobby": {"offset": 1, "epoch": "e"}}', "is not room:<room> or user:<user_id>"),
        ('{"room:a": {"offset": -1, "epoch": "e"}}', "offset is not an integer >= 0"),
        ('{"room:a": {"offset": true, "epoch": "e"}}', "offset is not an integer >= 0"),
        ('{"room:a": {"offset": 1}}', "expected exactly offset and epoch"),
        ('{"room:a": {"offset": 1, "epoch": ""}}', "epoch is not a string"),
        ('{"room:a": 3}', "expected exactly offset and epoch"),
        (
            '{"room:a": {"offset": 1, "epoch": "e"}, "room:b": {"offset": 1, "epoch": "e"}}',
            "more than 1 channels",
        ),
        ('{"room:a": {"offset": 1, "epoch": "' + "e" * 2000 + '"}}', "too long"),
    ],
)
async def test_a_bad_since_is_refused_with_400(since: str, why: str) -> None:
    import urllib.parse

    async with serve(create_app(chat_config(max_since_channels=1))) as addr:
        url = f"ws://{addr}/ws?user_id=ann&session_id=s1&since={urllib.parse.quote(since)}"
        with pytest.raises(InvalidStatus) as refused:
            await connect(url)
        response = refused.value.response
        assert response.status_code == 400
        body = json.loads(response.body or b"")
        assert body["error"].startswith("invalid since: ") and why in body["error"], body


async def test_a_bad_since_under_first_message_auth_closes_1008() -> None:
    import time

    import jwt
    from websockets.exceptions import ConnectionClosed

    secret = "history-test-secret-0123456789-abcdef"
    config = chat_config()
    config["auth"] = {"plugin": "jwt", "secret": secret}
    config["server"] = {**config["server"], "first_message_auth": True}
    token = jwt.encode({"sub": "ann", "exp": int(time.time()) + 60}, secret, algorithm="HS256")
    async with serve(create_app(config)) as addr:
        url = f"ws://{addr}/ws?session_id=s1&since=%7Bnope"
        async with connect(url) as client:
            await client.send(json.dumps({"type": "auth", "token": token}))
            with pytest.raises(ConnectionClosed):
                await client.recv()
            assert client.close_code == 1008
            assert client.close_reason == "invalid since: not JSON"


async def test_live_messages_held_past_the_bound_close_1013_and_the_next_resume_recovers() -> None:
    config = chat_config(max_replay_messages=3)
    config["plugins"] = ["chat", "tests.history.burst_plugin"]
    app = create_app(config)
    host = app.state.host
    async with serve(app) as addr:
        ann, welcome = await open_client(addr, "ann")
        await join(ann, "news")
        await host.publish_room("news", {"type": "story"})
        seen = [await next_message(ann)]
        await ann.close()
        await wait_for(lambda: len(host.manager) == 0)
        # The rejoin publishes 5 bursts while ann recovers: more than 3 held -> closed, 1013.
        ann, _ = await open_client(addr, "ann", welcome["session_id"], last_positions(seen))
        got: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed):
            while True:
                got.append(await next_message(ann))
        assert ann.close_code == 1013 and ann.close_reason == "recovery overflow"
        # 7 missed (user_left, user_joined, 5 bursts) > 3: a replay_limit gap, then recovered;
        # the held bursts are all covered by the gap's offset, so none follows.
        assert [(m["type"], m.get("reason")) for m in got] == [
            ("gap", "replay_limit"),
            ("recovered", None),
        ]
        assert got[0]["offset"] == seen[0]["pos"]["offset"] + 7


async def test_a_replay_longer_than_the_send_queue_is_paced_not_cut() -> None:
    config = chat_config(rooms_size=3000, max_replay_messages=3000, max_replay_bytes=50_000_000)
    config["limits"] = {"messages_per_second": 0, "send_queue": 8}
    app = create_app(config)
    host = app.state.host
    async with serve(app) as addr:
        ann, welcome = await open_client(addr, "ann")
        await join(ann, "news")
        await ann.close()
        await wait_for(lambda: len(host.manager) == 0)
        text = "x" * 8192
        for n in range(2000):  # 16 MB: far more than the socket buffers and 8 queued frames
            await host.publish_room("news", {"type": "story", "n": n, "text": text})
        ann, _ = await open_client(addr, "ann", welcome["session_id"], {})
        recovery = await read_until(ann, "recovered", timeout=30)
        assert [m["n"] for m in recovery if m.get("type") == "story"] == list(range(2000))
        await ann.close()
