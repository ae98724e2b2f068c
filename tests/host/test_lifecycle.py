"""The connection lifecycle over a real uvicorn server: order of hooks, replies, close codes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect

from netrun_ws import CloseCode, create_app
from netrun_ws.testing import Serve
from tests.host.helpers import RECORDING, base_config, recv_json, recv_until, wait_for
from tests.host.manual_heartbeat import heartbeat_by_hand, passes_until_gone
from tests.support.server import serve


def events(app: Any) -> list[tuple[str, Any]]:
    return list(app.state.host.state["events"])


def names(app: Any) -> list[str]:
    return [name for name, _ in events(app)]


async def test_welcome_payload_cannot_override_the_hosts_keys(netrun_serve: Serve) -> None:
    """hookspecs.welcome_payload and docs/hooks.md name the protected keys: keep them true."""
    protected = ("type", "connection_id", "user_id", "session_id", "resumed", "state", "rooms")
    plugin = {"plugin": RECORDING, "welcome": {key: "forged" for key in protected}}
    server = await netrun_serve({"plugins": [plugin]})
    client = await server.connect("alice", session_id="s-1")
    first = client.welcome
    await client.request({"type": "shout", "text": "join"}, "joined")
    await client.close()
    resumed = (await server.connect("alice", session_id="s-1")).welcome
    assert (first["type"], first["user_id"], first["session_id"]) == ("connect", "alice", "s-1")
    assert first["resumed"] is False and first["connection_id"] != "forged"
    assert resumed["resumed"] is True and resumed["connection_id"] != "forged"
    assert resumed["state"] == {} and isinstance(resumed["rooms"], list)


async def test_hooks_fire_in_documented_order(netrun_serve: Serve) -> None:
    server = await netrun_serve({"plugins": [RECORDING]})
    app = server.app
    client = await server.connect("alice")
    welcome = client.welcome
    assert await client.request({"type": "shout", "text": "hi"}) == {"type": "shout", "text": "HI"}
    await client.send("{not json")
    await client.expect_error("invalid_json")
    await client.close()
    await wait_for(lambda: "on_disconnect" in names(app))
    assert welcome["type"] == "connect"
    assert welcome["user_id"] == "alice"
    assert welcome["recorded"] is True
    assert welcome["connection_id"]
    await server.stop()
    setup = names(app)[: names(app).index("handshake")]
    assert setup == [
        "add_hookspecs",
        "configure",
        "register_message_types",
        "register_routes",
        "register_redactions",
        "provide_store",
        "startup",
    ]
    lifecycle = [n for n in names(app) if n not in setup or n == "shutdown"]
    assert lifecycle == [
        "handshake",
        "authenticate",
        "on_connect",
        "welcome_payload",
        "before_send",
        "after_send",  # the welcome
        "on_ready",
        "on_message_received",
        "on_message",
        "before_send",
        "after_send",  # the reply
        "on_message_received",
        "before_send",
        "after_send",  # the error reply goes out before the hook
        "on_invalid_message",
        "on_disconnect",
        "shutdown",
    ]
    assert dict(events(app))["on_disconnect"] == 1000


async def test_invalid_messages_get_error_replies_and_the_connection_stays() -> None:
    app = create_app(base_config(plugins=[RECORDING]))
    async with serve(app) as addr, connect(f"ws://{addr}/ws") as client:
        await recv_json(client)
        cases = {
            "{oops": "invalid_json",
            "[1, 2]": "invalid_message",
            '{"no_type": 1}': "invalid_message",
            '{"type": "nope"}': "unknown_type",
            '{"type": "shout"}': "validation_failed",
            '{"type": "shout", "text": "x", "extra": 1}': "validation_failed",
        }
        for frame, code in cases.items():
            await client.send(frame)
            reply = await recv_json(client)
            assert reply["type"] == "error", frame
            assert reply["code"] == code, frame
            assert "Traceback" not in json.dumps(reply)
        await client.send(b"\x00\x01binary")
        assert (await recv_json(client))["code"] == "binary_not_supported"
        await client.send(json.dumps({"type": "shout", "text": "still here"}))
        assert (await recv_json(client))["text"] == "STILL HERE"


async def test_too_many_consecutive_errors_closes_with_4000() -> None:
    config = base_config(limits={"max_consecutive_errors": 3})
    async with serve(create_app(config)) as addr, connect(f"ws://{addr}/ws") as client:
        await recv_json(client)
        for _ in range(3):
            await client.send("nope")
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await recv_json(client)
        assert client.close_code == CloseCode.TOO_MANY_INVALID_MESSAGES


async def test_a_failing_handler_replies_handler_error_and_other_clients_are_unaffected() -> None:
    plugin = {"plugin": RECORDING, "fail_on_text": "boom"}
    app = create_app(base_config(plugins=[plugin]))
    async with serve(app) as addr:
        async with connect(f"ws://{addr}/ws") as a, connect(f"ws://{addr}/ws") as b:
            await recv_json(a)
            await recv_json(b)
            await a.send(json.dumps({"type": "shout", "text": "boom"}))
            reply = await recv_json(a)
            assert reply["code"] == "handler_error"
            assert "tests.host.recording_plugin" in reply["error"] or "plugins" in reply["error"]
            await b.send(json.dumps({"type": "shout", "text": "fine"}))
            assert (await recv_json(b))["text"] == "FINE"
            await a.send(json.dumps({"type": "shout", "text": "again"}))
            assert (await recv_json(a))["text"] == "AGAIN"
    assert ("on_error", "HookError") in events(app)


async def test_handshake_rejection_is_http_403_and_no_connection() -> None:
    plugin = {"plugin": RECORDING, "reject_user": "mallory"}
    app = create_app(base_config(plugins=[plugin]))
    async with serve(app) as addr:
        with pytest.raises(websockets.InvalidStatus) as info:
            async with connect(f"ws://{addr}/ws?user_id=mallory"):
                pass
        assert info.value.response.status_code == 403
    assert "on_connect" not in names(app)


async def test_origin_allowlist() -> None:
    config = base_config(server={"allowed_origins": ["http://good.example"]})
    async with serve(create_app(config)) as addr:
        async with connect(f"ws://{addr}/ws", origin="http://good.example") as ok:  # type: ignore[arg-type]
            assert (await recv_json(ok))["type"] == "connect"
        for origin in ("http://evil.example", "null", "http://good.example.evil.com"):
            with pytest.raises(websockets.InvalidStatus) as info:
                async with connect(f"ws://{addr}/ws", origin=origin):  # type: ignore[arg-type]
                    pass
            assert info.value.response.status_code == 403


async def test_per_user_limit_from_config() -> None:
    config = base_config(limits={"max_connections_per_user": 2})
    async with serve(create_app(config)) as addr:
        url = f"ws://{addr}/ws?user_id=carol"
        async with connect(url) as c1, connect(url) as c2:
            await recv_json(c1)
            await recv_json(c2)
            with pytest.raises(websockets.InvalidStatus) as info:
                async with connect(url):
                    pass
            assert info.value.response.status_code == 429
            assert b"max_connections_per_user (2) reached" in info.value.response.body
        # The slots are freed once those two are gone.
        async with connect(url) as again:
            assert (await recv_json(again))["user_id"] == "carol"


async def test_rooms_authorize_join_leave_and_before_send_drop() -> None:
    app = create_app(base_config(plugins=[RECORDING]))
    async with serve(app) as addr, connect(f"ws://{addr}/ws?user_id=dave") as client:
        await recv_json(client)
        for text, expected in (("join", True), ("deny", False), ("leave", True)):
            await client.send(json.dumps({"type": "shout", "text": text}))
            assert (await recv_json(client))["ok"] is expected
        await client.send(json.dumps({"type": "shout", "text": "secret"}))  # reply is DROPped
        await client.send(json.dumps({"type": "shout", "text": "after"}))
        assert (await recv_json(client))["text"] == "AFTER"
    recorded = events(app)
    assert ("on_room_join", "r1") in recorded
    assert ("on_room_leave", "r1") in recorded
    assert ("on_room_join", "denied") not in recorded


async def test_heartbeat_pings_then_closes_a_silent_client_with_4100(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passes = heartbeat_by_hand(monkeypatch)
    heartbeat = {"plugin": "ping", "interval": 5, "timeout": 3600, "max_missed": 3}
    app = create_app(base_config(heartbeat=heartbeat, plugins=[RECORDING]))
    async with serve(app) as addr:
        async with connect(f"ws://{addr}/ws?user_id=erin") as client:
            welcome = await recv_json(client)
            assert welcome["heartbeat"] == {"interval": 5, "timeout": 3600, "max_missed": 3}
            await passes.step()
            assert await recv_until(client, "ping") == {"type": "ping"}
            # Answering keeps it alive, pass after pass (more of them than max_missed).
            for _ in range(5):
                await client.send('{"type": "pong"}')
                # The server answers our ping after it has read the pong before it.
                await client.send('{"type": "ping"}')
                assert (await recv_until(client, "pong"))["type"] == "pong"
                await passes.step()
                await recv_until(client, "ping")
            # Then silence: the next passes find it missed 1, 2, then 3 (max_missed) pings.
            host = app.state.host
            assert await passes_until_gone(passes, host, welcome["connection_id"]) == 3
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await recv_json(client)
            assert client.close_code == CloseCode.HEARTBEAT_TIMEOUT
    recorded = names(app)
    assert "on_heartbeat_missed" in recorded
    assert recorded.index("on_stale") < recorded.index("on_disconnect")
    assert dict(events(app))["on_disconnect"] == CloseCode.HEARTBEAT_TIMEOUT


async def test_welcome_carries_reconnect_policy() -> None:
    reconnect = {"plugin": "exponential", "initial_delay": 0.5, "max_delay": 8, "max_attempts": 0}
    async with serve(create_app(base_config(reconnect=reconnect))) as addr:
        async with connect(f"ws://{addr}/ws") as client:
            welcome = await recv_json(client)
    policy = welcome["reconnect"]
    assert policy["initial_delay"] == 0.5
    assert policy["max_delay"] == 8
    assert policy["max_attempts"] == 0


async def test_healthz_readyz_and_plugin_routes() -> None:
    import httpx

    app = create_app(base_config(plugins=[RECORDING]))
    async with serve(app) as addr, httpx.AsyncClient(base_url=f"http://{addr}") as http:
        assert (await http.get("/healthz")).json() == {"status": "alive"}
        assert (await http.get("/readyz")).status_code == 200
        assert "startup" in (await http.get("/recorded")).text


async def test_rate_limit_replies_then_closes_with_4102() -> None:
    rate = 5  # a burst of 5 messages, then one more per 1/5 s
    config = base_config(limits={"messages_per_second": rate}, plugins=[RECORDING])
    async with serve(create_app(config)) as addr, connect(f"ws://{addr}/ws") as client:
        await recv_json(client)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(30):
            await client.send(json.dumps({"type": "shout", "text": "x"}))
        replies = []
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                replies.append(await recv_json(client))
        took = loop.time() - started  # the server read every frame it answered within this
        assert client.close_code == CloseCode.RATE_LIMITED
        # The burst passes. The bucket refills with time (the host's wall clock): a run slowed
        # down for more than 1/rate s gets that many more through; one of a few ms, none.
        shouts = [r["text"] for r in replies if r["type"] == "shout"]
        assert rate <= len(shouts) <= rate + int(took * rate)
        assert shouts == ["X"] * len(shouts)
        assert {r["code"] for r in replies if r["type"] == "error"} == {"rate_limited"}
        # Closed after more than a burst of refused messages in a row.
        assert [r["type"] for r in replies[-rate:]] == ["error"] * rate


async def test_oversize_frame_closes_with_1009_and_others_continue() -> None:
    config = base_config(limits={"max_message_bytes": 1024}, plugins=[RECORDING])
    async with serve(create_app(config)) as addr:
        async with connect(f"ws://{addr}/ws") as big, connect(f"ws://{addr}/ws") as other:
            await recv_json(big)
            await recv_json(other)
            await big.send(json.dumps({"type": "shout", "text": "x" * 2000}))
            with pytest.raises(websockets.ConnectionClosed):
                await recv_json(big)
            assert big.close_code == CloseCode.MESSAGE_TOO_BIG
            await other.send(json.dumps({"type": "shout", "text": "ok"}))
            assert (await recv_json(other))["text"] == "OK"
