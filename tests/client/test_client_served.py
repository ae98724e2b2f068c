"""The Python client against a real served app: auth transports, pings, reconnect decisions,
token refresh, typed messages."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

from netrun_ws.client import ClientClosed, State
from netrun_ws.protocol import MessageRegistry
from tests.client.helpers import (
    BURST,
    FAST_RECONNECT,
    JWT,
    Recorder,
    chat_config,
    client_for,
    next_of,
    served,
    token,
)
from tests.host.helpers import wait_for


@pytest.mark.parametrize("transport", ["header", "subprotocol", "message"])
async def test_a_token_authenticates_through_each_transport(transport: str) -> None:
    server = {"path": "/ws", "first_message_auth": transport == "message"}
    async with served(chat_config(auth=JWT, server=server)) as (_, addr):
        client = client_for(addr, token=token("alice"), token_transport=transport)
        async with client:
            welcome = await next_of(client, "connect")
            assert isinstance(welcome, dict)
            assert welcome["user_id"] == "alice"
            assert client.session_id == welcome["session_id"]
            await client.send({"type": "join", "room": "lobby"})
            assert await next_of(client, "joined") == {
                "type": "joined",
                "room": "lobby",
                "members": ["alice"],
            }


async def test_without_a_token_query_params_reach_the_anonymous_plugin() -> None:
    async with served(chat_config()) as (_, addr):
        async with client_for(addr, params={"user_id": "bob"}) as client:
            welcome = await next_of(client, "connect")
            assert isinstance(welcome, dict)
            assert welcome["user_id"] == "bob"


async def test_a_refused_token_is_not_retried() -> None:
    recorder = Recorder()
    async with served(chat_config(auth=JWT)) as (_, addr):
        client = client_for(addr, recorder, token="forged", retry_first=True)
        with pytest.raises(ClientClosed) as refused:
            await client.start()
    assert (refused.value.code, "invalid token" in refused.value.reason) == (1008, True)
    assert recorder.kinds() == [State.CONNECTING, State.CLOSED]


async def test_a_refused_token_is_retried_once_with_the_refresh_callbacks_token() -> None:
    calls: list[int] = []

    def fresh_token() -> str:
        calls.append(1)
        return "still-forged"

    recorder = Recorder()
    async with served(chat_config(auth=JWT)) as (_, addr):
        # Even the first connection: a refused token gets one retry with a new one.
        client = client_for(addr, recorder, token="forged", refresh_token=fresh_token)
        with pytest.raises(ClientClosed) as refused:
            await client.start()
    assert refused.value.code == 1008
    assert calls == [1]
    assert recorder.kinds() == [State.CONNECTING, State.RECONNECTING, State.CLOSED]


async def test_an_http_403_refusal_is_not_retried() -> None:
    recorder = Recorder()
    config = chat_config(server={"path": "/ws", "allowed_origins": ["http://good.example"]})
    async with served(config) as (_, addr):
        client = client_for(
            addr,
            recorder,
            params={"user_id": "a"},
            headers={"Origin": "http://evil.example"},
            retry_first=True,
        )
        with pytest.raises(ClientClosed) as refused:
            await client.start()
    assert refused.value.code == 403
    assert "HTTP 403" in refused.value.reason
    assert recorder.kinds() == [State.CONNECTING, State.CLOSED]


async def test_a_terminal_close_code_ends_the_client_without_a_reconnect() -> None:
    recorder = Recorder()
    config = chat_config(limits={"messages_per_second": 0, "max_consecutive_errors": 2})
    async with served(config) as (_, addr):
        async with client_for(addr, recorder, params={"user_id": "a"}) as client:
            for _ in range(2):
                await client.send({"type": "nonsense"})
            with pytest.raises(ClientClosed) as ended:
                async for _message in client:
                    pass
    assert ended.value.code == 4000
    assert recorder.kinds() == [State.CONNECTING, State.CONNECTED, State.CLOSED]


async def test_pings_are_answered_so_the_heartbeat_never_closes_the_connection() -> None:
    heartbeat = {"plugin": "ping", "interval": 0.1, "timeout": 0.3, "max_missed": 2}
    recorder = Recorder()
    async with served(chat_config(heartbeat=heartbeat)) as (app, addr):
        async with client_for(addr, recorder, params={"user_id": "a"}) as client:
            (connection,) = app.state.host.manager.connections()
            seen: list[object] = []

            async def read() -> None:
                async for message in client:
                    seen.append(message)

            reader = asyncio.create_task(read())
            # Several heartbeat timeouts pass; the server has sent pings all along.
            await asyncio.sleep(1.0)
            reader.cancel()
            assert list(app.state.host.manager.connections()) == [connection]
            assert recorder.kinds() == [State.CONNECTING, State.CONNECTED]
            assert not any(isinstance(m, dict) and m.get("type") == "ping" for m in seen)


async def test_after_a_drain_the_client_reconnects_promptly_to_the_restarted_server() -> None:
    recorder = Recorder()
    async with served(chat_config()) as (app, addr):
        port = int(addr.rsplit(":", 1)[1])
        client = client_for(addr, recorder, params={"user_id": "a"})
        await client.start()
        await next_of(client, "connect")
        await app.state.host.drain(5.0)
        disconnect = await next_of(client, "disconnect")
        assert isinstance(disconnect, dict) and disconnect["code"] == 1012
    try:
        async with served(chat_config(), port=port):
            await recorder.wait_state(State.CONNECTED, count=2)
            welcome = await next_of(client, "connect")
            assert isinstance(welcome, dict) and welcome["resumed"] is False  # memory store: new
            await client.send({"type": "join", "room": "lobby"})
            assert (await next_of(client, "joined"))["room"] == "lobby"  # type: ignore[index]
    finally:
        await client.close()
    reconnecting = [s for s in recorder.states if s.state is State.RECONNECTING]
    assert reconnecting[0].code == 1012
    assert reconnecting[0].delay <= FAST_RECONNECT["initial_delay"] / 2  # prompt after a drain


async def test_a_drained_session_resumes_on_the_restarted_node_of_a_redis_cluster(
    shared_redis: object,
) -> None:
    store = {"plugin": "redis", "url": shared_redis.url, "key_prefix": f"client{time.time_ns()}"}  # type: ignore[attr-defined]
    recorder = Recorder()
    async with served(chat_config(store=store)) as (app, addr):
        port = int(addr.rsplit(":", 1)[1])
        client = client_for(addr, recorder, params={"user_id": "a"})
        await client.start()
        first = await next_of(client, "connect")
        await client.send({"type": "join", "room": "lobby"})
        await next_of(client, "joined")
        await app.state.host.drain(5.0)
    try:
        async with served(chat_config(store=store), port=port):
            welcome = await next_of(client, "connect")
            assert isinstance(welcome, dict) and isinstance(first, dict)
            assert welcome["resumed"] is True
            assert welcome["session_id"] == first["session_id"]
            assert welcome["rooms"] == ["lobby"]
    finally:
        await client.close()


async def test_attempts_follow_the_welcome_policy_and_stop_at_max_attempts() -> None:
    policy = {**FAST_RECONNECT, "max_attempts": 3}
    recorder = Recorder()
    async with served(chat_config(reconnect=policy)) as (app, addr):
        client = client_for(addr, recorder, params={"user_id": "a"})
        await client.start()
        await app.state.host.drain(5.0)
    # The server never comes back.
    with pytest.raises(ClientClosed) as gave_up:
        async with asyncio.timeout(10):
            async for _message in client:
                pass
    assert "gave up after 3 attempts" in gave_up.value.reason
    delays = [(s.attempt, s.delay) for s in recorder.states if s.state is State.RECONNECTING]
    assert [attempt for attempt, _ in delays] == [1, 2, 3]
    assert delays[0][1] <= 0.025  # prompt (a drain), then the policy's backoff with jitter
    assert 0.05 <= delays[1][1] <= 0.1
    assert 0.1 <= delays[2][1] <= 0.2
    assert recorder.kinds()[-1] is State.CLOSED


async def test_the_refresh_callback_renews_the_token_before_it_expires() -> None:
    issued: list[str] = []

    async def fresh_token() -> str:
        issued.append(token("alice", 300))
        return issued[-1]

    recorder = Recorder()
    short = token("alice", 3)
    async with served(chat_config(auth=JWT)) as (app, addr):
        client = client_for(
            addr, recorder, token=short, refresh_token=fresh_token, refresh_margin=2
        )
        async with client:
            refreshed = await next_of(client, "refreshed", timeout=10)
            assert isinstance(refreshed, dict) and refreshed["expires_at"] > time.time() + 200
            assert len(issued) == 1
            # The first token's expiry passes: the connection, renewed, stays open.
            expiry = app.state.host.manager.connections()[0]
            await asyncio.sleep(max(0.0, 3.5 - (time.time() - (refreshed["expires_at"] - 300))))
            assert list(app.state.host.manager.connections()) == [expiry]
    assert recorder.kinds() == [State.CONNECTING, State.CONNECTED, State.CLOSED]


class Said(BaseModel):
    type: Literal["said"]
    room: str
    user_id: str
    text: str


class Say(BaseModel):
    type: Literal["say"] = "say"
    room: str
    text: str


async def test_registered_types_arrive_as_models_and_models_can_be_sent() -> None:
    async with served(chat_config()) as (_, addr):
        client = client_for(addr, params={"user_id": "a"}, registry=MessageRegistry(Said))
        async with client:
            await client.send({"type": "join", "room": "lobby"})
            joined = await next_of(client, "joined")
            assert isinstance(joined, dict)  # not registered: a dict
            await client.send(Say(room="lobby", text="hi"))
            said = await next_of(client, "said")
            assert said == Said(type="said", room="lobby", user_id="a", text="hi")


async def test_close_ends_iteration_and_send_then_raises() -> None:
    async with served(chat_config()) as (app, addr):
        client = client_for(addr, params={"user_id": "a"})
        await client.start()
        await client.close()
        remaining = [m async for m in client]  # what had arrived, then the end
        assert [m["type"] for m in remaining] == ["connect"]  # type: ignore[index]
        with pytest.raises(ClientClosed):
            await client.send({"type": "join", "room": "x"})
        await wait_for(lambda: not app.state.host.manager.connections())


async def test_a_server_ping_read_while_closing_holds_up_neither_close_nor_messages(
    tmp_path: Path,
) -> None:
    # Server pings queue up behind a burst the app has not read (max_queue holds the reader),
    # and a second burst follows them. After close() the reader meets those pings: answering one
    # would wait for the close to finish while websockets, its queue full, stops reading the
    # close reply, so close() would wait out close_timeout and the second burst would be lost.
    (tmp_path / "burst.py").write_text(BURST)
    heartbeat = {"plugin": "ping", "interval": 0.02, "timeout": 60, "max_missed": 10_000}
    config = chat_config(plugins_dir=str(tmp_path), plugins=["burst"], heartbeat=heartbeat)
    async with served(config) as (app, addr):
        client = client_for(addr, params={"user_id": "a"}, max_queue=8)
        await client.start()
        await client.send({"type": "burst", "count": 100})
        first = await next_of(client, "item")
        await asyncio.sleep(0.3)  # pings meanwhile, behind the first burst
        await client.send({"type": "burst", "count": 100})
        await wait_for(lambda: app.state.host.state["burst_sent"] == 200)
        started = time.monotonic()
        await client.close()
        assert time.monotonic() - started < 3
        rest = [m async for m in client]
    items = [first] + [m for m in rest if m["type"] == "item"]  # type: ignore[index]
    assert [m["n"] for m in items] == list(range(100)) * 2  # type: ignore[index]


async def test_an_expired_token_without_a_refresh_callback_ends_the_client() -> None:
    recorder = Recorder()
    async with served(chat_config(auth=JWT)) as (_, addr):
        async with client_for(addr, recorder, token=token("alice", 1)) as client:
            with pytest.raises(ClientClosed) as ended:
                async with asyncio.timeout(10):
                    async for _message in client:
                        pass
    assert (ended.value.code, ended.value.reason) == (1008, "closed with 1008 (token expired)")
    assert recorder.kinds() == [State.CONNECTING, State.CONNECTED, State.CLOSED]


async def test_an_expired_token_is_renewed_before_reconnecting() -> None:
    issued: list[str] = []

    def fresh_token() -> str:
        issued.append(token("alice", 300))
        return issued[-1]

    recorder = Recorder()
    slow = {**FAST_RECONNECT, "initial_delay": 2.5, "max_delay": 5.0, "jitter": False}
    async with served(chat_config(auth=JWT, reconnect=slow)) as (app, addr):
        short = token("alice", 2)  # expires within 2 s: before the 2.5 s reconnect delay ends
        client = client_for(addr, recorder, token=short, refresh_token=fresh_token)
        async with client:
            (connection,) = app.state.host.manager.connections()
            await app.state.host.disconnect(connection, 1011, "dropped by the test")
            await recorder.wait_state(State.CONNECTED, count=2)
    # Asked once, before the reconnect; the server never refused the expired token.
    assert len(issued) == 1
    assert [s.code for s in recorder.states if s.state is State.RECONNECTING] == [1011]
