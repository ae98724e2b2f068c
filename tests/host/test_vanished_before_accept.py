"""A client that leaves between its upgrade request and the server's accept holds nothing: its
per-IP and per-user slots and its store entries are released (a leak here would lock the client's
address and user out for good, and grow a long-running node's memory).

Not on netrun_ws.testing: the vanishing client is a raw TCP socket, reset mid-upgrade."""

from __future__ import annotations

import asyncio
import socket
import struct

import websockets
from websockets.asyncio.client import connect

from netrun_ws import create_app
from tests.host.helpers import base_config, recv_json
from tests.support.server import serve

SLOW_AUTH = "tests.host.slow_auth_plugin"
DELAY = 0.3


def upgrade_then_reset(addr: str, target: str) -> None:
    """Send a complete upgrade request, then reset the TCP connection (SO_LINGER 0)."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def welcomed(addr: str, deadline: float) -> dict[str, object]:
    """The welcome of ann's next connection, retried while the vanished ones are still in
    flight on the server (429 until they are released, for good if they leaked)."""
    async with asyncio.timeout(deadline):
        while True:
            try:
                async with connect(f"ws://{addr}/ws?user_id=ann") as client:
                    welcome: dict[str, object] = await recv_json(client)
                    return welcome
            except websockets.InvalidStatus as refused:
                assert refused.response.status_code == 429, refused.response.body
                await asyncio.sleep(0.05)


async def test_a_client_gone_before_accept_releases_its_slots() -> None:
    config = base_config(
        limits={"max_connections_per_ip": 1, "max_connections_per_user": 1},
        plugins=[SLOW_AUTH],
    )
    async with serve(create_app(config)) as addr:
        for _ in range(3):
            await asyncio.to_thread(upgrade_then_reset, addr, f"/ws?user_id=ann&auth_delay={DELAY}")
            await asyncio.sleep(DELAY * 2)
        welcome = await welcomed(addr, deadline=5.0)
        assert welcome["type"] == "connect" and welcome["user_id"] == "ann"
