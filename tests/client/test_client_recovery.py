"""Resume and recovery as the Python client does them, against the server's history (issue 14):
every room message exactly once and in order across lost connections, and every loss a gap."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from netrun_ws.client import Client, Gap, State
from tests.client.helpers import FAST_RECONNECT, Recorder, chat_config, client_for, next_of, served
from tests.host.helpers import wait_for


class Feed:
    """Reads every message of a client in the background; the ``tick`` numbers in order."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.messages: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.client:
            assert isinstance(message, dict)
            self.messages.append(message)

    def ticks(self) -> list[int]:
        return [m["n"] for m in self.messages if m.get("type") == "tick"]

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == type_]

    async def until_tick(self, n: int, timeout: float = 10.0) -> None:
        await wait_for(lambda: n in self.ticks(), timeout)


class Publisher:
    """Publishes ``{"type": "tick", "n": ...}`` to a room about every millisecond, numbering on
    from ``after``, until stopped; ``stop()`` returns the last number sent."""

    def __init__(self, host: Any, room: str, after: int = 0) -> None:
        self.sent = after
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._publish(host, room))

    async def _publish(self, host: Any, room: str) -> None:
        while not self._stop.is_set():
            self.sent += 1
            await host.publish_room(room, {"type": "tick", "n": self.sent})
            await asyncio.sleep(0.001)

    async def stop(self) -> int:
        self._stop.set()
        await self._task
        return self.sent


@contextlib.asynccontextmanager
async def publishing(host: Any, room: str) -> AsyncIterator[Publisher]:
    publisher = Publisher(host, room)
    try:
        yield publisher
    finally:
        await publisher.stop()


async def joined(client: Client, room: str) -> None:
    await client.send({"type": "join", "room": room})
    await next_of(client, "joined")


async def test_every_message_arrives_once_in_order_across_dropped_connections() -> None:
    recorder = Recorder()
    async with served(chat_config(history={"rooms_size": 5000})) as (app, addr):
        host = app.state.host
        async with client_for(addr, recorder, params={"user_id": "ann"}) as client:
            await joined(client, "feed")
            feed = Feed(client)
            async with publishing(host, "feed") as publisher:
                for round_ in range(1, 4):
                    await wait_for(lambda r=round_: len(feed.ticks()) >= 40 * r)
                    (connection,) = host.manager.connections()
                    await host.disconnect(connection, 1011, "dropped by the test")
                    await recorder.wait_state(State.CONNECTED, count=round_ + 1)
            await feed.until_tick(publisher.sent)
            assert feed.ticks() == list(range(1, publisher.sent + 1))
            assert recorder.gaps == []
            recovered = feed.of_type("recovered")
            assert len(recovered) == 3
            assert sum(r["channels"]["room:feed"]["replayed"] for r in recovered) > 0
            assert [s.resumed for s in recorder.states if s.state is State.CONNECTED] == [
                False,
                True,
                True,
                True,
            ]


async def test_a_position_fallen_out_of_history_is_reported_as_a_gap() -> None:
    slow = {**FAST_RECONNECT, "initial_delay": 0.5, "max_delay": 1.0}
    recorder = Recorder()
    config = chat_config(history={"rooms_size": 3}, reconnect=slow)
    async with served(config) as (app, addr):
        host = app.state.host
        async with client_for(addr, recorder, params={"user_id": "ann"}) as client:
            await joined(client, "news")
            feed = Feed(client)
            await host.publish_room("news", {"type": "tick", "n": 0})
            await feed.until_tick(0)
            (connection,) = host.manager.connections()
            await host.disconnect(connection, 1011, "dropped by the test")
            # The client waits at least 0.25 s before it reconnects: these are missed.
            for n in range(1, 11):
                await host.publish_room("news", {"type": "tick", "n": n})
            await recorder.wait_state(State.CONNECTED, count=2)
            await wait_for(lambda: feed.of_type("recovered"))
            await host.publish_room("news", {"type": "tick", "n": 11})
            await feed.until_tick(11)
    (gap,) = recorder.gaps
    assert (gap.channel, gap.reason) == ("room:news", "out_of_history")
    assert feed.ticks() == [0, 11]  # the loss is the reported gap, nothing else
    (in_stream,) = feed.of_type("gap")
    assert in_stream["offset"] == gap.offset and in_stream["epoch"] == gap.epoch
    assert client.positions["room:news"].offset == gap.offset + 1  # type: ignore[operator]


async def test_a_restarted_memory_store_reports_every_channel_as_lost() -> None:
    recorder = Recorder()
    async with served(chat_config()) as (app, addr):
        port = int(addr.rsplit(":", 1)[1])
        client = client_for(addr, recorder, params={"user_id": "ann"})
        await client.start()
        await joined(client, "lobby")
        await app.state.host.publish_room("lobby", {"type": "tick", "n": 1})
        await next_of(client, "tick")
        await app.state.host.drain(5.0)
    try:
        async with served(chat_config(), port=port):
            await recorder.wait_state(State.CONNECTED, count=2)
            await next_of(client, "recovered")
    finally:
        await client.close()
    reasons = {(gap.channel, gap.reason) for gap in recorder.gaps}
    # The room went with the session; the user channel's history went with the store.
    assert reasons == {("room:lobby", "session_lost"), ("user:ann", "epoch_changed")}


async def test_a_client_of_a_drained_redis_node_recovers_what_another_node_published(
    shared_redis: Any,
) -> None:
    store = {"plugin": "redis", "url": shared_redis.url, "key_prefix": f"rec{time.time_ns()}"}
    config = chat_config(store=store, history={"rooms_size": 5000})
    recorder = Recorder()
    async with served(config) as (other, _):
        async with served(config) as (node, addr):
            port = int(addr.rsplit(":", 1)[1])
            client = client_for(addr, recorder, params={"user_id": "ann"})
            await client.start()
            await joined(client, "feed")
            feed = Feed(client)
            publisher = Publisher(other.state.host, "feed")
            await wait_for(lambda: len(feed.ticks()) >= 30)
            await node.state.host.drain(5.0)
            await wait_for(lambda: not client.connected)
        try:
            # The other node keeps publishing while the drained one is down and restarts.
            before = publisher.sent
            async with served(config, port=port):
                await recorder.wait_state(State.CONNECTED, count=2)
                await wait_for(lambda: len(feed.ticks()) >= before + 30)
                last = await publisher.stop()
                await feed.until_tick(last)
        finally:
            await publisher.stop()
            await client.close()
    assert feed.ticks() == list(range(1, last + 1))
    assert recorder.gaps == []
    assert [s.resumed for s in recorder.states if s.state is State.CONNECTED] == [False, True]
    (recovered,) = feed.of_type("recovered")
    assert recovered["channels"]["room:feed"]["replayed"] > 0  # published while it was away


def test_gap_is_a_plain_record() -> None:
    assert Gap("room:a", "out_of_history", 3, "e") == Gap("room:a", "out_of_history", 3, "e")


async def test_a_delivery_gap_reaches_the_callback_and_the_stream() -> None:
    recorder = Recorder()
    async with served(chat_config(store={"plugin": "tests.host.gap_store"})) as (app, addr):
        async with client_for(addr, recorder, params={"user_id": "ann"}) as client:
            await next_of(client, "connect")
            await app.state.host.store.simulate_gap(2.0)
            notice = await next_of(client, "delivery_gap")
    (gap,) = recorder.gaps
    assert isinstance(notice, dict)
    assert (gap.channel, gap.reason, gap.since, gap.until) == (
        None,
        "delivery_gap",
        notice["since"],
        notice["until"],
    )


async def test_a_client_tracking_more_channels_than_since_takes_sends_a_since_frame() -> None:
    # The server takes at most 2 channels in `since` and says so in its welcome: the client,
    # in 3 rooms plus its user channel, sends all four positions in a `since` frame instead,
    # and is replayed nothing it had (not room a's tick, from where the session joined it).
    recorder = Recorder()
    config = chat_config(history={"max_since_channels": 2})
    async with served(config) as (app, addr):
        host = app.state.host
        async with client_for(addr, recorder, params={"user_id": "ann"}) as client:
            first = await next_of(client, "connect")
            assert isinstance(first, dict) and first["max_since_channels"] == 2
            for room in ("a", "b", "c"):
                await joined(client, room)
            for n, room in enumerate(("a", "b", "b", "c", "c", "c")):
                await host.publish_room(room, {"type": "tick", "n": n})
                await next_of(client, "tick")
            (connection,) = host.manager.connections()
            await host.disconnect(connection, 1011, "dropped by the test")
            welcome = await next_of(client, "connect")
            assert isinstance(welcome, dict)
            assert welcome["resumed"] is True and welcome["session_id"] == first["session_id"]
            recovered = await next_of(client, "recovered")
    assert not [s for s in recorder.states if s.code == 400]
    assert recorder.gaps == []
    assert isinstance(recovered, dict)
    # Each room replays only the chat plugin's notices of ann leaving and rejoining it.
    replayed = {channel: entry["replayed"] for channel, entry in recovered["channels"].items()}
    assert replayed == {"user:ann": 0, "room:a": 2, "room:b": 2, "room:c": 2}


async def test_a_refused_resume_request_starts_a_new_session_and_reports_the_loss() -> None:
    # The server restarts with a lower max_since_channels than its welcome gave: the client's
    # `since` (user:ann and room:lobby) is one channel too many and is refused with 400.
    recorder = Recorder()
    async with served(chat_config()) as (app, addr):
        host = app.state.host
        client = client_for(addr, recorder, params={"user_id": "ann"})
        await client.start()
        first = await next_of(client, "connect")
        await joined(client, "lobby")
        await host.publish_room("lobby", {"type": "tick", "n": 1})
        await next_of(client, "tick")
    try:
        port = int(addr.rpartition(":")[2])
        async with served(chat_config(history={"max_since_channels": 1}), port=port):
            welcome = await next_of(client, "connect", timeout=10)
            assert isinstance(welcome, dict) and isinstance(first, dict)
            assert welcome["session_id"] != first["session_id"]
            assert welcome["resumed"] is False
    finally:
        await client.close()
    assert {(gap.channel, gap.reason) for gap in recorder.gaps} == {
        ("room:lobby", "resume_refused"),
        ("user:ann", "resume_refused"),
    }
    refused = [s for s in recorder.states if s.state is State.RECONNECTING and s.code == 400]
    assert len(refused) == 1


async def test_close_is_prompt_while_the_app_reads_nothing_and_keeps_what_arrived() -> None:
    # The app stopped reading: the client holds max_queue messages, websockets' own queue
    # fills and it stops reading the socket, with the server's answer to the close behind the
    # frames still coming. close() must not wait out websockets' 10 s close timeout, and every
    # message whose position the client counted stays readable (none lost to a later resume).
    async with served(chat_config(history={"rooms_size": 5000})) as (app, addr):
        host = app.state.host
        client = client_for(addr, params={"user_id": "ann"}, max_queue=4)
        await client.start()
        await joined(client, "feed")  # the last message the app reads
        for n in range(1, 301):
            await host.publish_room("feed", {"type": "tick", "n": n})
        await asyncio.sleep(0.3)  # the frames reach the client, which reads none of them
        started = time.monotonic()
        async with asyncio.timeout(3):
            await client.close()
        assert time.monotonic() - started < 2
        remaining: list[dict[str, Any]] = []
        async for message in client:
            assert isinstance(message, dict)  # no message models: every message is a dict
            remaining.append(message)
        ticks = [m["n"] for m in remaining if m.get("type") == "tick"]
        assert len(ticks) > 4  # the frames that came in while closing are kept, beyond max_queue
        assert ticks == list(range(1, len(ticks) + 1))
        assert client.positions["room:feed"].offset == remaining[-1]["pos"]["offset"]
        await wait_for(lambda: not host.manager.connections())


async def test_a_client_in_more_rooms_than_a_url_can_name_still_resumes_without_loss() -> None:
    # 150 rooms with long names: their positions take about 16 KB in a URL, twice what the
    # server's request line takes (a longer one is refused with 414). The client sends them in a
    # `since` frame: each room replays what was missed and nothing before.
    rooms = [f"project-discussion-{k:04d}" for k in range(150)]
    config = chat_config(plugins=[{"plugin": "chat", "max_rooms_per_connection": 200}])
    recorder = Recorder()
    async with served(config) as (app, addr):
        host = app.state.host
        async with client_for(addr, recorder, params={"user_id": "ann"}) as client:
            feed = Feed(client)
            for room in rooms:
                await client.send({"type": "join", "room": room})
            await wait_for(lambda: len(feed.of_type("joined")) == len(rooms))
            for n, room in enumerate(rooms):
                await host.publish_room(room, {"type": "tick", "n": n})
            await feed.until_tick(len(rooms) - 1)
            assert len(client.positions) == len(rooms) + 1  # and the user channel
            (connection,) = host.manager.connections()
            await host.disconnect(connection, 1011, "dropped by the test")
            for n, room in enumerate(rooms, start=len(rooms)):  # missed while away
                await host.publish_room(room, {"type": "tick", "n": n})
            await recorder.wait_state(State.CONNECTED, count=2)
            await feed.until_tick(2 * len(rooms) - 1)
            await wait_for(lambda: feed.of_type("recovered"))
    assert [s.resumed for s in recorder.states if s.state is State.CONNECTED] == [False, True]
    assert recorder.gaps == []
    assert sorted(feed.ticks()) == list(range(2 * len(rooms)))  # each once: nothing lost
    (recovered,) = feed.of_type("recovered")
    assert set(recovered["channels"]) == {*(f"room:{r}" for r in rooms), "user:ann"}
    # The missed tick and the chat plugin's notices of ann leaving and rejoining, per room.
    assert {recovered["channels"][f"room:{r}"]["replayed"] for r in rooms} == {3}
