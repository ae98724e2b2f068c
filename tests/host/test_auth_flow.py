"""Host-level authentication: first-message auth, expiry and refresh, per-IP limit, subprotocol,
revocation. Over a real uvicorn server."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from netrun_ws import CloseCode, create_app
from tests.host.helpers import RECORDING, base_config, recv_json, recv_until
from tests.support.server import serve

SECRET = "auth-flow-test-secret-0123456789abcdef"
JWT = {"plugin": "jwt", "secret": SECRET}


def first_message_app(handshake_timeout: float = 30.0) -> object:
    """First-message auth; by default a limit that a client which does send its auth message
    never meets, however slow the machine (the timeout itself has its own test)."""
    return create_app(
        base_config(
            server={"first_message_auth": True, "handshake_timeout": handshake_timeout},
            auth=JWT,
            plugins=[RECORDING],
        )
    )


async def closed(client: websockets.ClientConnection) -> tuple[int | None, str | None]:
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(client.recv(), 5)
    return client.close_code, client.close_reason


async def test_first_message_auth_accepts_a_token_and_refuses_the_rest() -> None:
    async with serve(first_message_app()) as addr:
        async with connect(f"ws://{addr}/ws") as client:
            await client.send(json.dumps({"type": "auth", "token": "good-ivy"}))
            welcome = await recv_json(client)
            assert welcome["type"] == "connect" and welcome["user_id"] == "ivy"
            await client.send(json.dumps({"type": "auth", "token": "good-ivy"}))
            assert (await recv_json(client))["code"] == "forbidden"
        async with connect(f"ws://{addr}/ws") as client:
            await client.send(json.dumps({"type": "auth", "token": "bad"}))
            assert await closed(client) == (CloseCode.POLICY_VIOLATION, "invalid token")
        async with connect(f"ws://{addr}/ws") as client:
            await client.send(json.dumps({"type": "hello"}))
            code, reason = await closed(client)
            assert code == CloseCode.POLICY_VIOLATION and "auth" in (reason or "")


async def test_first_message_auth_closes_a_silent_client_at_the_handshake_timeout() -> None:
    async with serve(first_message_app(handshake_timeout=0.2)) as addr:
        async with connect(f"ws://{addr}/ws") as client:  # says nothing
            assert await closed(client) == (CloseCode.POLICY_VIOLATION, "authentication timeout")


async def test_expired_credentials_close_with_1008_unless_refreshed() -> None:
    async with serve(first_message_app()) as addr:
        async with connect(f"ws://{addr}/ws") as client:
            await client.send(json.dumps({"type": "auth", "token": "good-jay@0.4"}))
            await recv_until(client, "connect")
            assert await closed(client) == (CloseCode.POLICY_VIOLATION, "token expired")
        async with connect(f"ws://{addr}/ws") as client:
            # The refresh goes out right behind the auth message, so the server has it before
            # the first expiry is even scheduled: no race with the clock, however slow.
            await client.send(json.dumps({"type": "auth", "token": "good-kim@0.4"}))
            await client.send(json.dumps({"type": "refresh", "token": "good-kim@30"}))
            await recv_until(client, "connect")
            assert (await recv_until(client, "refreshed"))["expires_at"] > 0
            # A connection authenticated later with the same lifetime: once it is closed for
            # expiry, the first expiry of kim's token has passed too (the host's expiry timers
            # fire in order), and kim's connection is still open.
            async with connect(f"ws://{addr}/ws") as later:
                await later.send(json.dumps({"type": "auth", "token": "good-lou@0.4"}))
                await recv_until(later, "connect")
                assert await closed(later) == (CloseCode.POLICY_VIOLATION, "token expired")
            await client.send(json.dumps({"type": "shout", "text": "alive"}))
            assert (await recv_until(client, "shout"))["text"] == "ALIVE"
            for token, reason in (("bad", "invalid token"), ("good-other", "another user")):
                await client.send(json.dumps({"type": "refresh", "token": token}))
                error = await recv_until(client, "error")
                assert error["code"] == "invalid_token" and reason in error["error"]


async def test_per_ip_limit_is_429() -> None:
    config = base_config(limits={"max_connections_per_ip": 2, "max_connections_per_user": 10})
    async with serve(create_app(config)) as addr:
        async with connect(f"ws://{addr}/ws") as a, connect(f"ws://{addr}/ws") as b:
            await recv_json(a)
            await recv_json(b)
            with pytest.raises(websockets.InvalidStatus) as info:
                await connect(f"ws://{addr}/ws")
            assert info.value.response.status_code == 429
            assert b"max_connections_per_ip (2)" in info.value.response.body
        async with connect(f"ws://{addr}/ws") as again:  # released on close
            await recv_json(again)


async def test_server_answers_its_subprotocol_and_never_a_bearer_entry() -> None:
    async with serve(create_app(base_config())) as addr:
        offered = ["netrun-ws", "bearer.not-a-real-token"]
        async with connect(f"ws://{addr}/ws", subprotocols=offered) as client:  # type: ignore[arg-type]
            await recv_json(client)
            assert client.subprotocol == "netrun-ws"
        async with connect(f"ws://{addr}/ws") as plain:
            await recv_json(plain)
            assert plain.subprotocol is None


async def test_revoke_api_closes_every_connection_of_the_user() -> None:
    key = "revoke-test-api-key-123456"
    app = create_app(base_config(server={"api_key": key}, plugins=[RECORDING]))
    async with serve(app) as addr, httpx.AsyncClient(base_url=f"http://{addr}") as http:
        url = f"ws://{addr}/ws"
        async with connect(f"{url}?user_id=lee") as one, connect(f"{url}?user_id=lee") as two:
            async with connect(f"{url}?user_id=max") as other:
                for client in (one, two, other):
                    await recv_json(client)
                answer = await http.post(
                    "/api/revoke",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"user": "lee", "reason": "password changed"},
                )
                assert answer.json() == {"local": 2, "remote_nodes": 0}
                for client in (one, two):
                    assert await closed(client) == (CloseCode.POLICY_VIOLATION, "password changed")
                await other.send(json.dumps({"type": "shout", "text": "still"}))
                assert (await recv_json(other))["text"] == "STILL"
            unauthorized = await http.post("/api/revoke", json={"user": "max"})
            assert unauthorized.status_code == 401
    assert ("on_user_revoked", ("lee", "password changed")) in app.state.host.state["events"]


async def test_drain_sends_a_resume_hint_closes_1012_and_refuses_newcomers() -> None:
    app = create_app(base_config())
    async with serve(app) as addr:
        async with connect(f"ws://{addr}/ws?session_id=s-1") as client:
            await recv_json(client)
            assert await app.state.host.drain(timeout=5) == 1
            hint = await recv_json(client)
            assert hint["type"] == "disconnect" and hint["session_id"] == "s-1"
            assert await closed(client) == (CloseCode.SERVICE_RESTART, "service restart")
        with pytest.raises(websockets.InvalidStatus) as info:
            await connect(f"ws://{addr}/ws")
        assert info.value.response.status_code == 503
        async with httpx.AsyncClient(base_url=f"http://{addr}") as http:
            assert (await http.get("/readyz")).status_code == 503
