"""`netrun-ws run` with the repository's default netrun_ws.yaml, as a new user runs it."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from tests.host.helpers import recv_json, recv_until
from tests.support.cli_server import cli_env, run_cli

ROOT = Path(__file__).resolve().parents[2]


async def test_default_config_chat_between_two_clients() -> None:
    async with run_cli(ROOT / "netrun_ws.yaml", cwd=ROOT) as server:
        url = f"ws://{server.addr}/ws"
        async with connect(f"{url}?user_id=alice") as alice, connect(f"{url}?user_id=bob") as bob:
            welcome = await recv_json(alice)
            assert welcome["type"] == "connect" and welcome["user_id"] == "alice"
            assert welcome["heartbeat"]["interval"] == 30
            assert welcome["reconnect"]["max_attempts"] == 10
            await recv_json(bob)
            await alice.send(json.dumps({"type": "join", "room": "lobby"}))
            assert (await recv_until(alice, "joined"))["members"] == ["alice"]
            await bob.send(json.dumps({"type": "join", "room": "lobby"}))
            assert (await recv_until(bob, "joined"))["members"] == ["alice", "bob"]
            assert (await recv_until(alice, "user_joined"))["user_id"] == "bob"
            await bob.send(json.dumps({"type": "say", "room": "lobby", "text": "hello"}))
            said = await recv_until(alice, "said")
            assert said == {"type": "said", "room": "lobby", "user_id": "bob", "text": "hello"}
            await alice.send(json.dumps({"type": "direct", "to": "bob", "text": "psst"}))
            assert (await recv_until(bob, "direct")) == {
                "type": "direct",
                "from": "alice",
                "text": "psst",
            }
            assert (await recv_until(alice, "ack"))["delivered"] == 1
            await alice.send("{broken")
            assert (await recv_until(alice, "error"))["code"] == "invalid_json"
            async with httpx.AsyncClient(base_url=f"http://{server.addr}") as http:
                metrics = (await http.get("/metrics")).text
                assert "netrun_ws_connections 2.0" in metrics
                stats = (await http.get("/metrics.json")).json()
                assert stats["connections"]["total_connections"] == 2
    assert "Traceback" not in server.text()


async def drained(client: Any, welcome: dict[str, Any]) -> None:
    """The client got the resume hint, then the 1012 close "service restart"."""
    hint = await recv_until(client, "disconnect", timeout=10)
    assert hint["code"] == 1012 and hint["session_id"] == welcome["session_id"]
    with pytest.raises(websockets.ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                await client.recv()
    assert client.close_code == 1012
    assert client.close_reason == "service restart"


async def test_sigterm_closes_clients_with_1012_and_exits_cleanly() -> None:
    async with run_cli(ROOT / "netrun_ws.yaml", cwd=ROOT) as server:
        clients = [await connect(f"ws://{server.addr}/ws?user_id=u{i}") for i in range(20)]
        welcomes = [await recv_json(client) for client in clients]
        server.process.send_signal(signal.SIGTERM)
        for client, welcome in zip(clients, welcomes, strict=True):
            await drained(client, welcome)
        # The signal is re-raised once the server has shut down (status 143 in a shell).
        assert await asyncio.wait_for(server.process.wait(), 15) == -signal.SIGTERM
    assert "Traceback" not in server.text()


async def test_ctrl_c_drains_the_same_way_and_exits_0() -> None:
    async with run_cli(ROOT / "netrun_ws.yaml", cwd=ROOT) as server:
        client = await connect(f"ws://{server.addr}/ws?user_id=u")
        welcome = await recv_json(client)
        server.process.send_signal(signal.SIGINT)
        await drained(client, welcome)
        assert await asyncio.wait_for(server.process.wait(), 15) == 0
    assert "Traceback" not in server.text()


async def test_editing_yaml_swaps_anonymous_for_jwt_without_code_change(tmp_path: Path) -> None:
    config = tmp_path / "netrun_ws.yaml"
    shutil.copytree(
        ROOT / "plugins", tmp_path / "plugins", ignore=shutil.ignore_patterns("netrun-ws-*")
    )
    original = (ROOT / "netrun_ws.yaml").read_text()
    config.write_text(original)
    async with run_cli(config, cwd=tmp_path) as server:
        async with connect(f"ws://{server.addr}/ws") as client:
            assert (await recv_json(client))["user_id"].startswith("anon-")

    secret = "swap-test-secret-0123456789abcdef0123"
    config.write_text(
        original.replace(
            "auth: {plugin: anonymous}",
            'auth: {plugin: jwt, secret: "${NETRUN_WS_JWT_SECRET}", algorithms: [HS256]}',
        )
    )
    env = {"NETRUN_WS_JWT_SECRET": secret}
    token = subprocess.run(  # noqa: ASYNC221 - a one-shot CLI call before the server starts
        [sys.executable, "-m", "netrun_ws", "token", "--user", "zoe", "--config", str(config)],
        capture_output=True,
        text=True,
        env=cli_env(env),
        check=True,
        timeout=60,
    ).stdout.strip()
    async with run_cli(config, cwd=tmp_path, env=env) as server:
        async with connect(f"ws://{server.addr}/ws") as anonymous:
            with pytest.raises(websockets.ConnectionClosed):
                await recv_json(anonymous)
            assert anonymous.close_code == 1008
            assert anonymous.close_reason == "authentication required"
        headers = {"Authorization": f"Bearer {token}"}
        async with connect(f"ws://{server.addr}/ws", additional_headers=headers) as bearer:
            assert (await recv_json(bearer))["user_id"] == "zoe"
        async with connect(f"ws://{server.addr}/ws?token={token}") as query:
            with pytest.raises(websockets.ConnectionClosed):  # tokens in URLs: off by default
                await recv_json(query)
            assert query.close_reason == "authentication required"
        offered = ["netrun-ws", f"bearer.{token}"]
        async with connect(f"ws://{server.addr}/ws", subprotocols=offered) as browser_like:  # type: ignore[arg-type]
            assert (await recv_json(browser_like))["user_id"] == "zoe"
            assert browser_like.subprotocol == "netrun-ws"
        forged_headers = {"Authorization": f"Bearer {token}x"}
        async with connect(f"ws://{server.addr}/ws", additional_headers=forged_headers) as forged:
            with pytest.raises(websockets.ConnectionClosed):
                await recv_json(forged)
            assert forged.close_code == 1008
            assert forged.close_reason == "invalid token"
        assert token not in server.text()
