"""Host-level authentication: first-message auth, expiry and refresh, per-IP limit, subprotocol,
revocation. Served through netrun_ws.testing (real uvicorn, real websocket clients)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from netrun_ws import CloseCode
from netrun_ws.testing import Serve, ServedApp, assert_error_reply
from tests.host.helpers import RECORDING

SECRET = "auth-flow-test-secret-0123456789abcdef"
JWT = {"plugin": "jwt", "secret": SECRET}


def first_message_config(handshake_timeout: float = 30.0) -> dict[str, Any]:
    """First-message auth; by default a limit that a client which does send its auth message
    never meets, however slow the machine (the timeout itself has its own test)."""
    return {
        "server": {"first_message_auth": True, "handshake_timeout": handshake_timeout},
        "auth": JWT,
        "plugins": [RECORDING],
    }


async def test_first_message_auth_accepts_a_token_and_refuses_the_rest(
    netrun_serve: Serve,
) -> None:
    server = await netrun_serve(first_message_config())
    client = await server.connect(welcome=False)
    await client.send({"type": "auth", "token": "good-ivy"})
    welcome = await client.expect("connect")
    assert welcome["user_id"] == "ivy"
    await client.send({"type": "auth", "token": "good-ivy"})
    await client.expect_error("forbidden")
    await client.close()
    client = await server.connect(welcome=False)
    await client.send({"type": "auth", "token": "bad"})
    await client.expect_close(CloseCode.POLICY_VIOLATION, "invalid token")
    client = await server.connect(welcome=False)
    await client.send({"type": "hello"})
    await client.expect_close(CloseCode.POLICY_VIOLATION)
    assert "auth" in (client.close_reason or "")


async def test_first_message_auth_closes_a_silent_client_at_the_handshake_timeout(
    netrun_serve: Serve,
) -> None:
    server = await netrun_serve(first_message_config(handshake_timeout=0.2))
    client = await server.connect(welcome=False)  # says nothing
    await client.expect_close(CloseCode.POLICY_VIOLATION, "authentication timeout")


async def test_expired_credentials_close_with_1008_unless_refreshed(netrun_serve: Serve) -> None:
    server = await netrun_serve(first_message_config())
    client = await server.connect(welcome=False)
    await client.send({"type": "auth", "token": "good-jay@0.4"})
    await client.skip_until("connect")
    await client.expect_close(CloseCode.POLICY_VIOLATION, "token expired")
    client = await server.connect(welcome=False)
    # The refresh goes out right behind the auth message, so the server has it before the first
    # expiry is even scheduled: no race with the clock, however slow.
    await client.send({"type": "auth", "token": "good-kim@0.4"})
    await client.send({"type": "refresh", "token": "good-kim@30"})
    await client.skip_until("connect")
    assert (await client.skip_until("refreshed"))["expires_at"] > 0
    # A connection authenticated later with the same lifetime: once it is closed for expiry, the
    # first expiry of kim's token has passed too (the host's expiry timers fire in order), and
    # kim's connection is still open.
    later = await server.connect(welcome=False)
    await later.send({"type": "auth", "token": "good-lou@0.4"})
    await later.skip_until("connect")
    await later.expect_close(CloseCode.POLICY_VIOLATION, "token expired")
    await client.send({"type": "shout", "text": "alive"})
    assert (await client.skip_until("shout"))["text"] == "ALIVE"
    for token, reason in (("bad", "invalid token"), ("good-other", "another user")):
        await client.send({"type": "refresh", "token": token})
        error = assert_error_reply(await client.skip_until("error"), "invalid_token")
        assert reason in error["error"]


async def test_per_ip_limit_is_429(netrun_serve: Serve) -> None:
    server = await netrun_serve(
        {"limits": {"max_connections_per_ip": 2, "max_connections_per_user": 10}}
    )
    a, b = await server.connect(), await server.connect()
    # refused() gives the status only; the body names the limit.
    with pytest.raises(InvalidStatus) as info:
        await server.connect(welcome=False)
    assert info.value.response.status_code == 429
    assert b"max_connections_per_ip (2)" in info.value.response.body
    await a.close()
    await b.close()
    await server.connect()  # released on close


async def test_server_answers_its_subprotocol_and_never_a_bearer_entry(
    netrun_server: ServedApp,
) -> None:
    offered = ["netrun-ws", "bearer.not-a-real-token"]
    client = await netrun_server.connect(subprotocols=offered)
    assert client.websocket.subprotocol == "netrun-ws"
    plain = await netrun_server.connect()
    assert plain.websocket.subprotocol is None


async def test_revoke_api_closes_every_connection_of_the_user(netrun_serve: Serve) -> None:
    key = "revoke-test-api-key-123456"
    server = await netrun_serve({"server": {"api_key": key}, "plugins": [RECORDING]})
    one, two = await server.connect("lee"), await server.connect("lee")
    other = await server.connect("max")
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        answer = await http.post(
            "/api/revoke",
            headers={"Authorization": f"Bearer {key}"},
            json={"user": "lee", "reason": "password changed"},
        )
        assert answer.json() == {"local": 2, "remote_nodes": 0}
        for client in (one, two):
            await client.expect_close(CloseCode.POLICY_VIOLATION, "password changed")
        shout = await other.request({"type": "shout", "text": "still"})
        assert shout["text"] == "STILL"
        unauthorized = await http.post("/api/revoke", json={"user": "max"})
        assert unauthorized.status_code == 401
    assert ("on_user_revoked", ("lee", "password changed")) in server.host.state["events"]


async def test_drain_sends_a_resume_hint_closes_1012_and_refuses_newcomers(
    netrun_server: ServedApp,
) -> None:
    client = await netrun_server.connect(session_id="s-1")
    assert await netrun_server.host.drain(timeout=5) == 1
    hint = await client.expect("disconnect")
    assert hint["session_id"] == "s-1"
    await client.expect_close(CloseCode.SERVICE_RESTART, "service restart")
    assert await netrun_server.refused() == 503
    async with httpx.AsyncClient(base_url=netrun_server.http_url) as http:
        assert (await http.get("/readyz")).status_code == 503
