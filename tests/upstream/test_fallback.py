"""With every fence shut (NETRUN_WS_UPSTREAM_FALLBACK=all, as on untested releases), netrun-ws
runs on its upstreams' public API alone, says so in one line each, and answers alike: uvicorn's
own protocols serve ``server.ws_protocol: netrun``, and PyJWT checks tokens by itself."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from jwt.algorithms import HMACAlgorithm
from websockets.asyncio.client import connect

from netrun_ws import _upstream, auth, create_app
from netrun_ws.auth import JWTAuthService, TokenValidationError
from netrun_ws.jwt import jws_segments
from netrun_ws.jwt.hmac_keys import CheckedHMACKeys
from tests.host.helpers import echo_burst, echo_config, only_connection, recv_json
from tests.security import attempt, claims, forge, sign
from tests.support.cli_server import run_cli
from tests.support.server import serve
from tests.support.upgrade import UPGRADE, response_head

SECRET = "fallback-test-secret-long-enough-for-hs384-" + "x" * 30
WARNINGS = (
    "server.ws_protocol 'netrun' falls back to uvicorn's own protocols: "
    f"{_upstream.FALLBACK_ENV}=all",
    "JWT verification falls back to PyJWT's own segment and secret checks: "
    f"{_upstream.FALLBACK_ENV}=all",
)


async def test_netrun_ws_run_serves_on_public_api_and_says_so_once(tmp_path: Path) -> None:
    config = tmp_path / "netrun_ws.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            server: {{ws_protocol: netrun}}
            auth: {{plugin: jwt, secret: "{SECRET}", algorithms: [HS256]}}
            heartbeat: {{plugin: ping, interval: 60, timeout: 120}}
            metrics: []
            plugins_dir: null
            """
        )
    )
    env = {_upstream.FALLBACK_ENV: "all"}
    async with run_cli(config, cwd=tmp_path, env=env) as server:
        url = f"ws://{server.addr}/ws"
        token = sign(SECRET, "HS256", claims("alice"))
        welcomed = await attempt(url, additional_headers={"Authorization": f"Bearer {token}"})
        assert welcomed.welcome is not None and welcomed.welcome["user_id"] == "alice"
        tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        refused = await attempt(url, additional_headers={"Authorization": f"Bearer {tampered}"})
        assert (refused.welcome, refused.code) == (None, 1008)
        await _pings_back(url)
    lines = server.text().splitlines()
    for warning in WARNINGS:
        assert len([line for line in lines if line.endswith(warning)]) == 1, server.text()
    assert "Traceback" not in server.text()


async def _pings_back(url: str) -> None:
    token = sign(SECRET, "HS256", claims("bob"))
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as client:
        assert (await recv_json(client))["type"] == "connect"
        await client.send(json.dumps({"type": "ping"}))
        assert (await recv_json(client))["type"] == "pong"


async def _served(request: bytes) -> tuple[list[bytes], list[dict[str, Any]], object]:
    """What an app configured with ``ws_protocol: netrun`` answers: the 101's head for
    ``request``, a burst of echoes, and the direct channel it offered."""
    app = create_app(echo_config("netrun"))
    async with serve(app) as addr:
        head = await response_head(addr, request)
        replies = await echo_burst(addr, 50, "fallback")
        async with connect(f"ws://{addr}/ws?user_id=u") as client:
            await recv_json(client)
            direct = only_connection(app).direct
    return head, replies, direct


async def test_the_netrun_setting_is_served_by_uvicorns_protocols_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = UPGRADE.replace(b"netrun.v1, bearer.x", b"netrun-ws, bearer.x") + b"\r\n"
    head, replies, direct = await _served(request)
    assert direct is not None  # netrun-ws's own protocol
    monkeypatch.setenv(_upstream.FALLBACK_ENV, "all")
    _upstream.forget()
    try:
        fallback_head, fallback_replies, fallback_direct = await _served(request)
    finally:
        _upstream.forget()
    assert fallback_direct is None  # uvicorn's protocol: plain ASGI
    assert fallback_head == head
    assert fallback_replies == replies


@pytest.mark.usefixtures("shut_fences")
def test_tokens_are_checked_by_pyjwt_alone() -> None:
    assert type(jws_segments.decoder()) is jwt.PyJWT
    keys = CheckedHMACKeys(SECRET.encode())
    key = keys.for_algorithm("HS256")
    assert key is not None and type(key.Algorithm) is HMACAlgorithm


def _decisions(service: JWTAuthService, tokens: list[str]) -> list[str]:
    outcomes = []
    for token in tokens:
        try:
            outcomes.append(str(service.validate_token_or_raise(token)["sub"]))
        except TokenValidationError as error:
            outcomes.append(error.reason)
    return outcomes


def test_pyjwts_own_checks_decide_every_token_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    now = int(time.time())
    good = sign(SECRET, "HS256", claims("alice"))
    head, payload, signature = good.split(".")
    last = "B" if signature[-1] != "B" else "C"
    tokens = [
        good,
        f"{head}=.{payload}.{signature}",  # refused before PyJWT sees it
        f"{head}.{payload}.{signature[:-1]}{last}",  # stray bits in the last character
        f"{head}.{payload}.{signature[::-1]}",
        sign(SECRET, "HS256", claims("bob", lifetime=-600)),
        sign(SECRET + "-other", "HS256", claims("carol")),
        sign(SECRET, "HS384", claims("dave")),
        forge({"alg": "none", "typ": "JWT"}, {"sub": "eve", "exp": now + 60}),
        forge({"alg": "HS256"}, {"sub": "mallory"}),
    ]
    fast = _decisions(JWTAuthService(SECRET), tokens)
    monkeypatch.setenv(_upstream.FALLBACK_ENV, "pyjwt")
    _upstream.forget()
    try:
        monkeypatch.setattr(auth, "_decode", jws_segments.decoder().decode)
        fallback = _decisions(JWTAuthService(SECRET), tokens)
    finally:
        _upstream.forget()
    assert fallback == fast, fast
    assert fast[0] == "alice"
    assert len(set(fast[1:])) > 1 and "alice" not in fast[1:]  # refused, for several reasons
