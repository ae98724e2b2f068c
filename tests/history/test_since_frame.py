"""A resume's positions as its first frame (`since_frame=1`): for more channels than a URL holds
(or than `history.max_since_channels`), over a real server with the memory store."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from netrun_ws import create_app
from tests.history.helpers import chat_config, last_positions, next_message, read_until
from tests.host.helpers import wait_for
from tests.support.server import serve

ROOMS = [f"r{k}" for k in range(6)]


async def _session_in_rooms(addr: str, host: Any) -> tuple[str, list[dict[str, Any]]]:
    """ann joins ROOMS, gets two stories in each, leaves; returns her session and what she got."""
    ann = await connect(f"ws://{addr}/ws?user_id=ann")
    welcome = json.loads(await ann.recv())
    for room in ROOMS:
        await ann.send(json.dumps({"type": "join", "room": room}))
        await read_until(ann, "joined")
    got: list[dict[str, Any]] = []
    for room in ROOMS:
        for n in range(2):
            await host.publish_room(room, {"type": "story", "room": room, "n": n})
            got.append(await next_message(ann))
    await ann.close()
    await wait_for(lambda: len(host.manager) == 0)
    return str(welcome["session_id"]), got


async def _resume(addr: str, session_id: str, query: str = "") -> ClientConnection:
    url = f"ws://{addr}/ws?user_id=ann&session_id={session_id}&since_frame=1{query}"
    return await connect(url)


@contextlib.asynccontextmanager
async def _resuming(config: dict[str, Any] | None = None) -> AsyncIterator[ClientConnection]:
    """ann's session (ROOMS, two stories each) resumed with since_frame=1, nothing sent yet."""
    app = create_app(config or chat_config())
    async with serve(app) as addr:
        session_id, _ = await _session_in_rooms(addr, app.state.host)
        ann = await _resume(addr, session_id)
        try:
            yield ann
        finally:
            await ann.close()


def _stories(replay: list[dict[str, Any]]) -> int:
    return len([m for m in replay if m["type"] == "story"])


async def test_the_since_frame_recovers_every_channel_from_its_position() -> None:
    # One channel allowed in the URL: the frame carries all seven (six rooms, the user channel).
    app = create_app(chat_config(max_since_channels=1))
    host = app.state.host
    async with serve(app) as addr:
        session_id, got = await _session_in_rooms(addr, host)
        for room in ROOMS[:3]:  # missed while away: one more story in half the rooms
            await host.publish_room(room, {"type": "story", "room": room, "n": 2})
        positions = last_positions(got)
        assert len(positions) == len(ROOMS)
        ann = await _resume(addr, session_id)
        await ann.send(json.dumps({"type": "since", "channels": positions}))
        welcome = await next_message(ann)
        assert welcome["resumed"] is True and welcome["since_frame"] is True
        replay = await read_until(ann, "recovered")
        await ann.close()
    stories = [m for m in replay if m["type"] == "story"]
    # Only what was missed (the stories published meanwhile, the rooms' own notices of ann
    # leaving and rejoining): nothing at or before the frame's positions, which the session's
    # join positions would have replayed.
    assert sorted((m["room"], m["n"]) for m in stories) == [(room, 2) for room in ROOMS[:3]]
    replayed = [m["pos"] for m in replay if "pos" in m]
    assert all(pos["offset"] > positions[pos["channel"]]["offset"] for pos in replayed)
    recovered = replay[-1]["channels"]
    assert {f"room:{room}" for room in ROOMS} <= set(recovered)


async def test_without_the_frame_the_left_out_channels_replay_from_the_join() -> None:
    """The baseline the frame improves on: a URL naming one channel replays the others whole."""
    app = create_app(chat_config(max_since_channels=1))
    host = app.state.host
    async with serve(app) as addr:
        session_id, got = await _session_in_rooms(addr, host)
        first = dict([next(iter(last_positions(got).items()))])
        url = f"ws://{addr}/ws?user_id=ann&session_id={session_id}&since="
        ann = await connect(url + json.dumps(first).replace(" ", ""))
        await next_message(ann)
        replay = await read_until(ann, "recovered")
        await ann.close()
    assert _stories(replay) == 2 * (len(ROOMS) - 1)


async def test_a_bad_since_frame_gets_an_error_and_recovery_goes_on_from_the_joins() -> None:
    async with _resuming() as ann:
        await ann.send(json.dumps({"type": "since", "channels": {"room:r0": {"offset": -1}}}))
        await next_message(ann)  # the welcome
        error = await next_message(ann)
        assert error["type"] == "error" and error["code"] == "invalid_message"
        assert error["error"].startswith("invalid since: channel 'room:r0'")
        replay = await read_until(ann, "recovered")  # nothing lost: replayed from the joins
    assert _stories(replay) == 2 * len(ROOMS)


async def test_a_first_frame_that_is_not_since_is_handled_after_the_recovery() -> None:
    async with _resuming() as ann:
        await ann.send(json.dumps({"type": "direct", "to": "ann", "text": "first"}))
        await next_message(ann)  # the welcome
        replay = await read_until(ann, "recovered")
        after = [await next_message(ann) for _ in range(2)]
    assert _stories(replay) == 2 * len(ROOMS)
    assert {m["type"] for m in after} == {"direct", "ack"}


async def test_no_since_frame_in_time_gets_an_error_then_the_recovery() -> None:
    config = chat_config()
    config["server"] = {**config["server"], "handshake_timeout": 0.3}
    async with _resuming(config) as ann:
        await next_message(ann)  # the welcome
        error = await next_message(ann)
        assert error == {
            "type": "error",
            "code": "invalid_message",
            "error": "no since frame within 0.3 s",
            "details": None,
        }
        replay = await read_until(ann, "recovered")
    assert _stories(replay) == 2 * len(ROOMS)


async def test_a_since_message_later_is_answered_with_an_error() -> None:
    async with serve(create_app(chat_config())) as addr:
        ann = await connect(f"ws://{addr}/ws?user_id=ann")
        await next_message(ann)
        since = {"type": "since", "channels": {"user:ann": {"offset": 0, "epoch": "e"}}}
        await ann.send(json.dumps(since))
        error = await next_message(ann)
        await ann.close()
    assert error["code"] == "invalid_message" and "since_frame=1" in error["error"]


async def test_a_client_leaving_before_its_since_frame_is_closed_quietly() -> None:
    app = create_app(chat_config())
    host = app.state.host
    async with serve(app) as addr:
        session_id, _ = await _session_in_rooms(addr, host)
        ann = await _resume(addr, session_id)
        await next_message(ann)  # the welcome
        await ann.close()
        await wait_for(lambda: len(host.manager) == 0)
        # The session is intact: the next resume (with its frame) recovers it.
        ann = await _resume(addr, session_id)
        await ann.send(json.dumps({"type": "since", "channels": {}}))
        assert (await next_message(ann))["resumed"] is True
        replay = await asyncio.wait_for(read_until(ann, "recovered"), 5)
        await ann.close()
    assert replay[-1]["type"] == "recovered"
