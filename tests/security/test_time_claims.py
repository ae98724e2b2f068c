"""Time claims and expiries (issue 15, point 2).

``exp``, ``nbf`` and ``iat`` must be finite JSON numbers (RFC 7519 NumericDate) or the token is
refused as ``invalid token``: a string, bool, null, array, object, NaN or infinity never passes,
whichever claim carries it, at connect, in a first ``auth`` message or in a ``refresh``. And no
refresh removes a connection's expiry: a refresh whose identity has none is refused with
``invalid_token`` "token has no expiry", an expiry that is not a finite number is the plugin's
failure ("refresh failed"), and either way the connection still closes at its old expiry.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from netrun_ws import CloseCode, create_app
from netrun_ws.auth import JWTAuthService, TokenValidationError
from tests.host.helpers import base_config, recv_json, recv_until
from tests.security import attempt, b64
from tests.support.server import serve

pytestmark = pytest.mark.timeout(60)
#: Server tests run under each websocket protocol.
served = pytest.mark.usefixtures("served_ws_protocol")

SECRET = "time-claims-test-secret-0123456789abcdef"
JWT = {"plugin": "jwt", "secret": SECRET}
EXPIRY_PLUGIN = "tests.security.expiry_plugin"

#: Raw JSON texts of values that are not a NumericDate (``future`` is a number of seconds an
#: hour ahead, so a string spelling of it is the issue's example).
NOT_NUMERIC = [
    '"{future}"',
    '"{future}.5"',
    '"1e10"',
    '"soon"',
    '""',
    "true",
    "false",
    "null",
    "[{future}]",
    '{{"t": {future}}}',
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
]
TIME_CLAIMS = ["exp", "nbf", "iat"]


def signed(claims_json: str) -> str:
    """An HS256 token over exactly ``claims_json`` (PyJWT would re-encode its values)."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(claims_json.encode())
    signature = jwt.get_algorithm_by_name("HS256").sign(f"{head}.{body}".encode(), SECRET.encode())
    return f"{head}.{body}.{b64(signature)}"


def token_with(claim: str, raw: str, user: str = "alice") -> str:
    now = int(time.time())
    values = {"sub": json.dumps(user), "iat": str(now), "exp": str(now + 3600)}
    values[claim] = raw.format(future=now + 3600)
    return signed("{" + ",".join(f'"{k}": {v}' for k, v in values.items()) + "}")


@pytest.mark.parametrize("raw", NOT_NUMERIC)
@pytest.mark.parametrize("claim", TIME_CLAIMS)
def test_the_verifier_refuses_a_time_claim_that_is_not_a_number(claim: str, raw: str) -> None:
    service = JWTAuthService(secret_key=SECRET)
    with pytest.raises(TokenValidationError) as refused:
        service.validate_token_or_raise(token_with(claim, raw))
    # PyJWT counts a null required claim as absent (exp is always required).
    expected = "missing_claim" if (claim, raw) == ("exp", "null") else "invalid_token"
    assert refused.value.reason == expected


@pytest.mark.parametrize("raw", ["{future}", "{future}.25", "1.7e9"])
def test_numbers_of_every_json_spelling_pass(raw: str) -> None:
    service = JWTAuthService(secret_key=SECRET)
    claims = service.validate_token_or_raise(token_with("exp", raw.replace("1.7e9", "4.1e9")))
    assert isinstance(claims["exp"], int | float)


@served
@pytest.mark.parametrize("claim", TIME_CLAIMS)
async def test_a_string_time_claim_is_refused_at_connect_and_in_first_message_auth(
    claim: str,
) -> None:
    bad = token_with(claim, '"{future}"')
    async with serve(create_app(base_config(auth=JWT))) as addr:
        header = await attempt(f"ws://{addr}/ws", additional_headers=bearer(bad))
        control = await attempt(f"ws://{addr}/ws", additional_headers=bearer(token_with("x", "1")))
    assert (header.code, header.reason) == (CloseCode.POLICY_VIOLATION, "invalid token")
    assert control.welcome is not None and control.welcome["user_id"] == "alice"
    config = base_config(auth=JWT, server={"path": "/ws", "first_message_auth": True})
    async with serve(create_app(config)) as addr, connect(f"ws://{addr}/ws") as client:
        await client.send(json.dumps({"type": "auth", "token": bad}))
        await client.wait_closed()
        assert (client.close_code, client.close_reason) == (
            CloseCode.POLICY_VIOLATION,
            "invalid token",
        )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refused_refresh(client: ClientConnection, token: str) -> dict[str, Any]:
    await client.send(json.dumps({"type": "refresh", "token": token}))
    error = await recv_until(client, "error")
    assert error["code"] == "invalid_token"
    return error


async def closes_for_expiry(client: ClientConnection) -> tuple[int | None, str | None]:
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(client.recv(), 10)
    return client.close_code, client.close_reason


@served
async def test_a_jwt_refresh_with_a_string_exp_keeps_the_old_expiry() -> None:
    now = int(time.time())
    short = signed(f'{{"sub": "alice", "iat": {now}, "exp": {now + 2}}}')
    async with serve(create_app(base_config(auth=JWT))) as addr:
        async with connect(f"ws://{addr}/ws", additional_headers=bearer(short)) as client:
            assert (await recv_json(client))["type"] == "connect"
            for raw in NOT_NUMERIC:
                error = await refused_refresh(client, token_with("exp", raw))
                assert error["error"] == "invalid token"
            # Every refresh was refused: the 2-second token still ends the connection.
            assert await closes_for_expiry(client) == (CloseCode.POLICY_VIOLATION, "token expired")


@served
@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("never", "token has no expiry"),
        ("nan", "refresh failed"),
        ("inf", "refresh failed"),
        ("text", "refresh failed"),
    ],
)
async def test_no_plugin_refresh_removes_an_expiry(spec: str, reason: str) -> None:
    config = base_config(
        auth=JWT, server={"path": "/ws", "first_message_auth": True}, plugins=[EXPIRY_PLUGIN]
    )
    async with serve(create_app(config)) as addr, connect(f"ws://{addr}/ws") as client:
        await client.send(json.dumps({"type": "auth", "token": "alice@2"}))
        assert (await recv_json(client))["type"] == "connect"
        error = await refused_refresh(client, f"alice@{spec}")
        assert error["error"] == reason
        assert await closes_for_expiry(client) == (CloseCode.POLICY_VIOLATION, "token expired")


@served
async def test_a_connection_that_never_expired_may_refresh_to_no_expiry() -> None:
    config = base_config(
        auth=JWT, server={"path": "/ws", "first_message_auth": True}, plugins=[EXPIRY_PLUGIN]
    )
    async with serve(create_app(config)) as addr, connect(f"ws://{addr}/ws") as client:
        await client.send(json.dumps({"type": "auth", "token": "alice@never"}))
        assert (await recv_json(client))["type"] == "connect"
        await client.send(json.dumps({"type": "refresh", "token": "alice@never"}))
        assert (await recv_until(client, "refreshed"))["expires_at"] is None
        await client.send(json.dumps({"type": "refresh", "token": "alice@600"}))
        assert (await recv_until(client, "refreshed"))["expires_at"] > time.time()


@served
@pytest.mark.parametrize("spec", ["nan", "inf", "text"])
async def test_an_authenticating_plugin_with_a_non_numeric_expiry_is_a_plugin_failure(
    spec: str,
) -> None:
    config = base_config(
        auth=JWT, server={"path": "/ws", "first_message_auth": True}, plugins=[EXPIRY_PLUGIN]
    )
    async with serve(create_app(config)) as addr, connect(f"ws://{addr}/ws") as client:
        await client.send(json.dumps({"type": "auth", "token": f"alice@{spec}"}))
        await client.wait_closed()
        assert (client.close_code, client.close_reason) == (
            CloseCode.INTERNAL_ERROR,
            "authentication error",
        )
