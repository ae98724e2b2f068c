"""Revocation lasts (issue 15, point 3).

After ``POST /api/revoke``, the revoked credentials stay refused on every node sharing the store:
HTTP 403 ``{"error": "revoked"}`` before the upgrade, close 1008 "revoked" under first-message
auth, ``invalid_token`` "revoked" for a refresh. A user revocation refuses every token of the user
issued at or before it (and tokens without ``iat``), while a token issued later is accepted (the
user logs in again); a token revocation refuses that token only, until its ``exp``.

Server tests run on the memory store (one node) and on the Redis store (two nodes sharing a real
redis-server: revoked on the first, refused on the second too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from netrun_ws import create_app
from netrun_ws.codes import CloseCode
from tests.host.helpers import base_config, recv_json, recv_until
from tests.security import attempt
from tests.support.redis_server import RedisServer
from tests.support.server import serve

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("served_ws_protocol")]

SECRET = "revocation-test-secret-0123456789abcdef"
KEY = "revocation-test-api-key-0123456789"
OTHER_SECRET = "another-secret-of-length-32!!!!!"
AUTH = {"Authorization": f"Bearer {KEY}"}


def token(user: str = "alice", *, iat: float | None = None, **extra: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user, "iat": now if iat is None else iat, "exp": now + 600}
    claims.update(extra)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, SECRET, "HS256")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def store_config(kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if kind == "memory":
        return {"plugin": "memory"}
    redis = request.getfixturevalue("shared_redis")
    return {"plugin": "redis", "url": redis.url, "key_prefix": f"rev_{uuid.uuid4().hex[:10]}"}


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    return store_config(request.param, request)


@contextlib.asynccontextmanager
async def nodes(store: dict[str, Any], **server: Any) -> AsyncIterator[list[str]]:
    """One node on the memory store, two sharing Redis; yields their addresses."""
    count = 1 if store["plugin"] == "memory" else 2
    config = base_config(
        store=store,
        auth={"plugin": "jwt", "secret": SECRET},
        server={"path": "/ws", "api_key": KEY, **server},
    )
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(serve(create_app(config))) for _ in range(count)]


async def revoke(addr: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://{addr}") as http:
        return await http.post("/api/revoke", json=body, headers=AUTH)


async def refusal(addr: str, credential: str) -> tuple[int, Any]:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(f"ws://{addr}/ws", additional_headers=bearer(credential)):
            pass
    response = caught.value.response
    return response.status_code, json.loads(response.body or b"null")


async def welcomed(addr: str, credential: str) -> bool:
    try:
        outcome = await attempt(f"ws://{addr}/ws", additional_headers=bearer(credential))
    except InvalidStatus:
        return False
    return outcome.welcome is not None and outcome.welcome["type"] == "connect"


async def next_second(after: float) -> None:
    """Wait until a whole-second ``iat`` can be later than ``after`` (tokens carry seconds)."""
    while int(time.time()) <= after:  # noqa: ASYNC110 - waiting for the wall clock itself
        await asyncio.sleep(0.05)


async def test_a_revoked_user_stays_refused_on_every_node_until_a_new_login(
    store: dict[str, Any],
) -> None:
    first, other = token(jti="a-1"), token(jti="a-2")
    no_iat = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, SECRET, "HS256")
    async with nodes(store) as addrs:
        async with connect(f"ws://{addrs[0]}/ws", additional_headers=bearer(first)) as live:
            assert (await recv_json(live))["type"] == "connect"
            answer = await revoke(addrs[0], {"user": "alice", "reason": "password changed"})
            assert answer.status_code == 200
            revoked_at = time.time()
            with pytest.raises(websockets.ConnectionClosed):
                await recv_json(live)
            assert (live.close_code, live.close_reason) == (
                CloseCode.POLICY_VIOLATION,
                "password changed",
            )
        for addr in addrs:  # the node that revoked and (Redis) another one
            for credential in (first, other, no_iat):
                assert await refusal(addr, credential) == (403, {"error": "revoked"})
        # Other users are not concerned.
        assert await welcomed(addrs[-1], token("bob"))
        # A token issued after the revocation logs the user in again, everywhere.
        await next_second(revoked_at)
        fresh = token(jti="a-4")
        for addr in addrs:
            assert await welcomed(addr, fresh)


async def test_a_revoked_token_stays_refused_and_the_users_other_tokens_pass(
    store: dict[str, Any],
) -> None:
    stolen, kept = token(jti="t-1"), token(jti="t-2")
    async with nodes(store) as addrs:
        url = f"ws://{addrs[-1]}/ws"
        async with (
            connect(url, additional_headers=bearer(stolen)) as thief,
            connect(url, additional_headers=bearer(kept)) as owner,
        ):
            await recv_json(thief)
            await recv_json(owner)
            answer = await revoke(addrs[0], {"token": stolen})
            assert answer.status_code == 200
            assert answer.json()["local"] + answer.json()["remote_nodes"] >= 1
            with pytest.raises(websockets.ConnectionClosed):
                await recv_json(thief)
            assert (thief.close_code, thief.close_reason) == (CloseCode.POLICY_VIOLATION, "revoked")
            # The user's other token still works, and its connection stays.
            await owner.send(json.dumps({"type": "refresh", "token": kept}))
            assert (await recv_until(owner, "refreshed"))["type"] == "refreshed"
            # A refresh with the revoked token is refused like an invalid one.
            await owner.send(json.dumps({"type": "refresh", "token": stolen}))
            error = await recv_until(owner, "error")
            assert (error["code"], error["error"]) == ("invalid_token", "revoked")
            assert owner.close_code is None
        for addr in addrs:
            assert await refusal(addr, stolen) == (403, {"error": "revoked"})
            assert await welcomed(addr, kept)


@pytest.mark.parametrize("by", ["jti", "token"])
async def test_a_token_is_named_by_its_jti_or_else_by_its_claims(
    store: dict[str, Any], by: str
) -> None:
    with_jti = token(jti="j-1")
    without_jti = token(scope="a")  # same user and times, other claims: another grant
    sibling = token(scope="b")
    async with nodes(store) as addrs:
        body = {"jti": "j-1"} if by == "jti" else {"token": without_jti}
        assert (await revoke(addrs[0], body)).status_code == 200
        refused = with_jti if by == "jti" else without_jti
        for addr in addrs:
            assert await refusal(addr, refused) == (403, {"error": "revoked"})
            assert await welcomed(addr, sibling)


async def test_a_revoked_token_is_refused_after_first_message_auth(
    store: dict[str, Any],
) -> None:
    revoked = token(jti="f-1")
    async with nodes(store, first_message_auth=True) as addrs:
        assert (await revoke(addrs[0], {"token": revoked})).status_code == 200
        assert (await revoke(addrs[0], {"user": "bob"})).status_code == 200
        for addr in addrs:
            for credential in (revoked, token("bob", iat=int(time.time()) - 5)):
                async with connect(f"ws://{addr}/ws") as client:
                    await client.send(json.dumps({"type": "auth", "token": credential}))
                    await client.wait_closed()
                    assert (client.close_code, client.close_reason) == (
                        CloseCode.POLICY_VIOLATION,
                        "revoked",
                    )


async def test_a_token_revocation_ends_at_the_given_expiry() -> None:
    revoked = token(jti="e-1")
    async with nodes({"plugin": "memory"}) as (addr,):
        answer = await revoke(addr, {"jti": "e-1", "expires_at": time.time() + 1})
        assert answer.status_code == 200
        assert await refusal(addr, revoked) == (403, {"error": "revoked"})
        async with asyncio.timeout(10):
            while not await welcomed(addr, revoked):  # noqa: ASYNC110 - waiting for the clock
                await asyncio.sleep(0.2)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reason": "x"},
        {"user": "a", "jti": "b"},
        {"user": "a", "token": "t"},
        {"jti": "a", "token": "t"},
        {"user": "a", "expires_at": 10**10},
        {"jti": "a", "expires_at": "soon"},
        {"jti": "a", "expires_at": -1},
        {"user": ""},
        {"jti": "x" * 300},
        {"user": "a", "reason": "r" * 200},
        {"user": "a", "extra": 1},
    ],
)
async def test_a_bad_revoke_body_is_explained_with_422(body: dict[str, Any]) -> None:
    async with nodes({"plugin": "memory"}) as (addr,):
        answer = await revoke(addr, body)
        assert answer.status_code == 422
        assert answer.json()["error"] == "invalid body"
        assert answer.json()["details"]


@pytest.mark.parametrize(
    ("credential", "why"),
    [
        ("not-a-jwt", "invalid token"),
        (jwt.encode({"sub": "a", "exp": 10}, SECRET, "HS256"), "token expired"),
        (jwt.encode({"sub": "a", "exp": 10**10}, OTHER_SECRET, "HS256"), None),
    ],
)
async def test_a_token_that_does_not_verify_is_not_revocable(
    credential: str, why: str | None
) -> None:
    async with nodes({"plugin": "memory"}) as (addr,):
        answer = await revoke(addr, {"token": credential})
        assert answer.status_code == 422
        (detail,) = answer.json()["details"]
        assert detail["loc"] == ["token"]
        assert detail["msg"] == (why or "invalid token")
        assert credential not in answer.text


async def test_without_a_token_auth_plugin_only_users_and_jtis_are_revocable() -> None:
    config = base_config(server={"path": "/ws", "api_key": KEY})  # anonymous auth
    async with serve(create_app(config)) as addr:
        answer = await revoke(addr, {"token": "anything"})
        assert answer.status_code == 422
        assert answer.json()["details"][0]["type"] == "token_unverified"
        assert (await revoke(addr, {"user": "carol"})).status_code == 200
        # The anonymous plugin's identities carry no iat: refused while the revocation lasts.
        with pytest.raises(InvalidStatus) as caught:
            async with connect(f"ws://{addr}/ws?user_id=carol"):
                pass
        assert caught.value.response.status_code == 403
        assert (await attempt(f"ws://{addr}/ws?user_id=dave")).welcome is not None


async def test_a_revocation_the_store_cannot_record_is_a_503_and_still_closes() -> None:
    async with RedisServer() as redis:
        store = {"plugin": "redis", "url": redis.url, "operation_timeout": 0.5}
        async with nodes(store) as addrs:
            async with connect(f"ws://{addrs[0]}/ws", additional_headers=bearer(token())) as live:
                await recv_json(live)
                redis.pause()
                try:
                    answer = await revoke(addrs[0], {"user": "alice"})
                    assert answer.status_code == 503
                    assert answer.json() == {"error": "revocation not recorded: store unavailable"}
                    with pytest.raises(websockets.ConnectionClosed):
                        await recv_json(live)
                    assert live.close_code == CloseCode.POLICY_VIOLATION
                finally:
                    redis.resume()


@pytest.mark.parametrize("subject", ["user", "token"])
async def test_a_revocation_during_an_admission_closes_the_connection_it_admits(
    subject: str,
) -> None:
    """The admission checked before the revocation was recorded and registers after its close:
    the node remembers what it closed and closes this one too."""
    credential = token(jti="race-1")
    config = base_config(
        store={"plugin": "tests.security.held_store"},
        auth={"plugin": "jwt", "secret": SECRET},
        server={"path": "/ws", "api_key": KEY},
    )
    app = create_app(config)
    async with serve(app) as addr:
        store = app.state.host.store
        store.gate.clear()
        connecting = asyncio.ensure_future(
            attempt(f"ws://{addr}/ws", additional_headers=bearer(credential))
        )
        await asyncio.wait_for(store.waiting.wait(), 5)  # past the check, not yet registered
        body = {"user": "alice"} if subject == "user" else {"token": credential}
        assert (await revoke(addr, body)).status_code == 200
        store.gate.set()
        outcome = await connecting
        assert outcome.welcome is None
        assert (outcome.code, outcome.reason) == (CloseCode.POLICY_VIOLATION, "revoked")
        assert len(app.state.host.manager) == 0
