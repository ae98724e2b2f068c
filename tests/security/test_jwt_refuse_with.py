"""``auth: jwt`` with ``refuse_with: http``: a bad token presented at the handshake is refused
before accept with HTTP 401 (a real websockets client sees ``InvalidStatus``); tokens sent inside
the connection are still refused with 1008; the default stays accept-then-1008."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from netrun_ws.identity import AuthenticationError
from netrun_ws.testing import Serve
from tests.security import claims, sign

pytestmark = pytest.mark.usefixtures("served_ws_protocol")

SECRET = "refuse-with-test-secret-0123456789abcdef"


def jwt_auth(**options: Any) -> dict[str, Any]:
    return {"plugin": "jwt", "secret": SECRET, "query_param": "token", **options}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_http_refuses_a_bad_header_token_with_401(netrun_serve: Serve) -> None:
    server = await netrun_serve(
        {"auth": jwt_auth(refuse_with="http"), "metrics": [{"plugin": "json"}]}
    )
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(server.ws_url(), additional_headers=bearer("not.a.jwt")):
            pass
    assert refused.value.response.status_code == 401
    assert refused.value.response.body == b'{"error":"invalid token"}'
    expired = sign(SECRET, "HS256", claims("alice", lifetime=-60))
    assert await server.refused(headers=bearer(expired)) == 401
    assert await server.refused(token="forged") == 401  # the query parameter is the handshake
    good = sign(SECRET, "HS256", claims("alice"))
    welcomed = await server.connect(headers=bearer(good))
    assert welcomed.welcome["user_id"] == "alice"
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        counted = (await http.get("/metrics.json")).json()["auth_refused"]
    assert counted == {"401": 3}  # on_auth_refused fired for each refusal


def test_authentication_error_takes_only_401_or_403() -> None:
    assert AuthenticationError("no", status=403).status == 403
    assert AuthenticationError("no").status is None
    with pytest.raises(ValueError, match="status must be 401 or 403"):
        AuthenticationError("no", status=500)


async def test_http_keeps_1008_for_first_message_tokens(netrun_serve: Serve) -> None:
    server = await netrun_serve(
        {"auth": jwt_auth(refuse_with="http"), "server": {"first_message_auth": True}}
    )
    client = await server.connect(welcome=False)
    await client.send({"type": "auth", "token": "not.a.jwt"})
    await client.expect_close(1008, "invalid token")


async def test_close_is_the_default(netrun_serve: Serve) -> None:
    server = await netrun_serve({"auth": jwt_auth()})
    client = await server.connect(welcome=False, headers=bearer("not.a.jwt"))
    await client.expect_close(1008, "invalid token")
