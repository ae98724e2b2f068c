"""What plugin authors reach for, through netrun_ws.testing: the welcome comes first and
``on_ready`` follows it, ``connection.handshake``/``connection.identity``, refusals counted by
``on_auth_refused`` and the built-in sinks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun_ws.testing import Serve, ServedApp

GREETER = "tests.host.greeter_plugin"


@pytest.fixture
def netrun_config(netrun_config: dict[str, Any]) -> dict[str, Any]:
    return {**netrun_config, "plugins": [GREETER]}


async def test_sends_from_on_connect_follow_the_welcome_then_on_ready(
    netrun_server: ServedApp,
) -> None:
    alice = await netrun_server.connect("alice", welcome=False)
    assert (await alice.recv())["type"] == "connect"
    assert [await alice.recv() for _ in range(4)] == [
        {"type": "early", "n": 1},
        {"type": "early", "n": 2},
        {"type": "arrived", "user_id": "alice"},
        {"type": "ready"},
    ]
    # A broadcast from another client's on_connect reaches alice after her welcome too.
    bob = await netrun_server.connect("bob", welcome=False)
    assert (await bob.expect("connect"))["user_id"] == "bob"
    assert await alice.expect("arrived") == {"type": "arrived", "user_id": "bob"}


async def test_handshake_and_identity_are_typed_fields(netrun_server: ServedApp) -> None:
    client = await netrun_server.connect(
        "carol", headers={"X-Test": "yes"}, subprotocols=["netrun-ws"], room="lobby"
    )
    await client.skip_until("ready")
    you = await client.request({"type": "whoami"}, "you")
    assert you == {
        "type": "you",
        "path": "/ws",
        "query": {"user_id": "carol", "room": "lobby"},
        "header": "yes",
        "client_host": "127.0.0.1",
        "client_port_is_int": True,
        "subprotocol": "netrun-ws",
        "user_id": "carol",
    }


async def test_auth_refusals_fire_on_auth_refused_and_are_counted(netrun_serve: Serve) -> None:
    server = await netrun_serve(
        {
            "metrics": [{"plugin": "prometheus"}, {"plugin": "json"}],
            "plugins": ["tests.host.recording_plugin"],
        }
    )
    for _ in range(2):
        refused = await server.connect("not valid", welcome=False)
        await refused.expect_close(1008, "invalid user_id")
    await server.connect("dave")
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        text = (await http.get("/metrics")).text
        body = (await http.get("/metrics.json")).json()
    assert 'netrun_ws_auth_refused_total{status="1008"} 2.0' in text
    assert body["auth_refused"] == {"1008": 2}
    events = [detail for name, detail in server.host.state["events"] if name == "on_auth_refused"]
    assert events == [("/ws", "invalid user_id", 1008)] * 2


HEADER_AUTH = """\
from netrun_ws import AuthenticationError, Identity, hookimpl


@hookimpl
def authenticate(request):
    tenant = request.headers.get("x-tenant")
    if tenant is None:
        raise AuthenticationError("tenant required", status=401)
    if tenant != "acme":
        raise AuthenticationError("unknown tenant", status=403)
    return Identity(user_id=request.query_params.get("user_id", "anon"))
"""


async def test_a_header_auth_plugin_refuses_before_accept_with_401_or_403(
    netrun_serve: Serve, tmp_path: Path
) -> None:
    (tmp_path / "tenant_auth.py").write_text(HEADER_AUTH)
    server = await netrun_serve(
        {
            "plugins_dir": str(tmp_path),
            "auth": {"plugin": "tenant_auth"},
            "metrics": [{"plugin": "json"}],
        }
    )
    assert await server.refused("ann") == 401
    assert await server.refused("ann", headers={"X-Tenant": "globex"}) == 403
    welcomed = await server.connect("ann", headers={"X-Tenant": "acme"})
    assert welcomed.welcome["user_id"] == "ann"
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        counted = (await http.get("/metrics.json")).json()["auth_refused"]
    assert counted == {"401": 1, "403": 1}
