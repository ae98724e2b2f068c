"""metrics: status - the live status page's data and access rules, on a real served app
(netrun_ws.testing; the proxy test runs `netrun-ws run` itself, tests/support/cli_server.py,
because it is about the X-Forwarded-For handling of the server the command builds).

The page itself (charts moving, nodes disappearing) is driven in Chromium by
tests/browser/test_status_page.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun_ws.auth import JWTAuthService
from netrun_ws.testing import Serve, ServedApp
from tests.host.helpers import ECHO
from tests.support.cli_server import run_cli

API_KEY = "status-page-api-key-0123456789"
SECRET = "status-secret-0123456789abcdefghij"


def status_config(**server: Any) -> dict[str, Any]:
    return {
        "server": {"path": "/ws", **server},
        "auth": {"plugin": "jwt", "secret": SECRET},
        "metrics": [{"plugin": "status", "interval": 0.1, "window": 10}],
        "plugins": [ECHO],
    }


def sink(server: ServedApp) -> Any:
    host = server.host
    return host.plugin_manager.get_plugin(host.slots["metrics.0"])


async def test_the_data_counts_traffic_closes_and_errors(netrun_serve: Serve) -> None:
    server = await netrun_serve(
        {"metrics": [{"plugin": "status", "interval": 0.1, "window": 10}], "plugins": [ECHO]}
    )
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        client = await server.connect("alice")
        for n in range(20):
            await client.request({"type": "echo", "seq": n}, "echo")
        await client.send("not json")
        await client.expect_error("invalid_json")
        await asyncio.sleep(0.35)
        data = (await http.get("/status/data")).json()
        await client.close()
        assert max(data["series"]["connections"]) == 1
        assert sum(data["series"]["messages_in"]) > 0 and sum(data["series"]["messages_out"]) > 0
        assert max(data["series"]["errors"]) > 0  # the frame that was not JSON
        await asyncio.sleep(0.35)
        data = (await http.get("/status/data")).json()
    assert data["close_codes"] == {"1000": 1}
    assert data["series"]["connections"][-1] == 0
    assert [n["node_id"] for n in data["nodes"]] == [data["node_id"]]
    slots = {row["slot"]: row for row in data["plugins"]}
    assert slots["store"]["plugin"] == "memory" and slots["store"]["origin"].startswith("built-in")
    assert slots["store"]["version"] != "-"


async def test_messages_in_per_second_is_a_rate_not_a_total(netrun_serve: Serve) -> None:
    server = await netrun_serve({"metrics": [{"plugin": "status"}], "plugins": [ECHO]})
    client = await server.connect("alice")
    status = sink(server)
    status.sample()  # the first reading only sets the baseline
    for n in range(10):
        await client.request({"type": "echo", "seq": n}, "echo")
    status.sample()
    rate = status.samples[-1].messages_in
    status.sample()  # no traffic since: the rate drops back to 0
    assert rate > 0 and status.samples[-1].messages_in == 0


async def test_the_busiest_rooms_and_the_masked_config_are_shown(netrun_serve: Serve) -> None:
    server = await netrun_serve(status_config())
    host = server.host
    jwt = JWTAuthService(SECRET).generate_token("bob")
    client = await server.connect(headers={"Authorization": f"Bearer {jwt}"})
    connection = host.connection(client.connection_id)
    assert connection is not None
    await host.join_room(connection, "lobby")
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        data = (await http.get("/status/data")).json()
    assert data["rooms"] == [{"room": "lobby", "members": 1}]
    text = json.dumps(data["config"])
    assert SECRET not in text


@pytest.mark.parametrize("path", ["/status", "/status/data"])
async def test_a_remote_client_needs_the_api_key(path: str, netrun_serve: Serve) -> None:
    # The served app sees loopback clients; the ASGI transport below reports another address.
    # Served, so that the app has started; requests go through the ASGI transport.
    server = await netrun_serve(status_config(api_key=API_KEY))
    transport = httpx.ASGITransport(app=server.app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://status.example") as http:
        refused = await http.get(path)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic")
        wrong = await http.get(path, headers={"Authorization": "Bearer not-the-key-0123456789"})
        assert wrong.status_code == 401
        bearer = await http.get(path, headers={"Authorization": f"Bearer {API_KEY}"})
        basic = base64.b64encode(f"anyone:{API_KEY}".encode()).decode()
        prompted = await http.get(path, headers={"Authorization": f"Basic {basic}"})
        broken = await http.get(path, headers={"Authorization": "Basic !!!"})
    assert bearer.status_code == prompted.status_code == 200
    assert broken.status_code == 401


async def test_without_an_api_key_the_page_is_loopback_only(netrun_serve: Serve) -> None:
    # Served, so that the app has started; requests go through the ASGI transport.
    server = await netrun_serve(status_config())
    transport = httpx.ASGITransport(app=server.app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://status.example") as http:
        refused = await http.get("/status", headers={"Authorization": "Bearer anything-at-all"})
    assert refused.status_code == 403
    assert refused.json() == {"error": "the status page is served to loopback clients only"}


async def test_a_client_behind_a_proxy_on_the_same_host_is_not_loopback(
    tmp_path: Path, served_ws_protocol: str
) -> None:
    # `netrun-ws run` itself: a proxy on this host connects from 127.0.0.1, and the client it
    # names in X-Forwarded-For (the nginx recipe sends it) is who the page is refused to.
    config = tmp_path / "netrun_ws.yaml"
    config.write_text(
        f"server: {{ws_protocol: {served_ws_protocol}}}\nheartbeat: null\nplugins_dir: null\n"
        "metrics: [{plugin: status}]\n"
    )
    trusted = {"FORWARDED_ALLOW_IPS": "127.0.0.1"}  # uvicorn's default, whatever the shell says
    async with (
        run_cli(config, env=trusted) as server,
        httpx.AsyncClient(base_url=f"http://{server.addr}") as http,
    ):
        local = await http.get("/status/data")
        proxied = await http.get("/status/data", headers={"X-Forwarded-For": "203.0.113.9"})
    assert local.status_code == 200
    assert proxied.status_code == 403


async def test_the_page_is_self_contained(netrun_serve: Serve) -> None:
    server = await netrun_serve(status_config())
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        page = await http.get("/status")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # No CDN, no external script, style or font: the server may have no internet access.
    assert "http://" not in page.text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page.text and "<svg" in page.text
