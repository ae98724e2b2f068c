"""permessage-deflate: off by default; when on, a deflate bomb cannot inflate past the limit.
Both under each websocket protocol (server.ws_protocol)."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.client import connect

from netrun_ws import CloseCode
from tests.host.helpers import recv_json
from tests.support.cli_server import run_cli

WS_PROTOCOLS = pytest.mark.parametrize("ws_protocol", ["netrun", "uvicorn"])


def config(tmp_path: Path, deflate: bool, ws_protocol: str) -> Path:
    path = tmp_path / "netrun_ws.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            server: {{permessage_deflate: {str(deflate).lower()}, ws_protocol: {ws_protocol}}}
            limits: {{max_message_bytes: 65536}}
            heartbeat: {{plugin: ping, interval: 60, timeout: 120}}
            metrics: []
            plugins_dir: null
            """
        )
    )
    return path


@WS_PROTOCOLS
async def test_deflate_is_off_by_default(tmp_path: Path, ws_protocol: str) -> None:
    async with run_cli(config(tmp_path, False, ws_protocol), cwd=tmp_path) as server:
        async with connect(f"ws://{server.addr}/ws", compression="deflate") as client:
            await recv_json(client)
            assert client.response is not None
            extensions = client.response.headers.get("Sec-WebSocket-Extensions")
            assert extensions is None


@WS_PROTOCOLS
async def test_a_deflate_bomb_is_closed_with_1009_and_the_server_stays_up(
    tmp_path: Path, ws_protocol: str
) -> None:
    async with run_cli(config(tmp_path, True, ws_protocol), cwd=tmp_path) as server:
        url = f"ws://{server.addr}/ws"
        async with connect(url, compression="deflate") as bystander:
            await recv_json(bystander)
            async with connect(url, compression="deflate", max_size=None) as bomber:
                await recv_json(bomber)
                assert bomber.response is not None
                assert "permessage-deflate" in bomber.response.headers["Sec-WebSocket-Extensions"]
                # 16 MiB of one character compresses to a few KiB on the wire.
                await bomber.send('{"type": "ping", "pad": "' + "0" * (16 * 1024 * 1024) + '"}')
                with pytest.raises(websockets.ConnectionClosed):
                    while True:
                        await asyncio.wait_for(bomber.recv(), 10)
                assert bomber.close_code == CloseCode.MESSAGE_TOO_BIG
            await bystander.send('{"type": "ping"}')
            assert (await recv_json(bystander))["type"] == "pong"
    assert "Traceback" not in server.text()
