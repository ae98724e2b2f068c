"""The connect scenario's client: WebSocket opening handshakes and nothing else, cheaply.

picows' client spends about as much CPU on a handshake as the bare uvicorn server does, so with
it the load generator's core was 80-95% busy and held back the fastest servers: the connect
rates measured the pair, not the server. This client writes a prepared upgrade request, checks
the 101 response (status, ``Upgrade``, ``Sec-WebSocket-Accept`` for its own key) and, for
servers that greet (netrun-ws, the Starlette + JWT peer), waits for the first text frame. It
never parses more than that: the connections only have to stay open for the memory reading.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import Sequence
from typing import cast
from urllib.parse import urlsplit

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEXT, _CLOSE = 0x1, 0x8


class HandshakeFailed(ConnectionError):
    pass


def upgrade_request(
    url: str, headers: Sequence[tuple[str, str]] = ()
) -> tuple[bytes, bytes, tuple[str, int]]:
    """(request bytes, the Sec-WebSocket-Accept a correct server answers, (host, port))."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), accept, (host, port)


class HandshakeClient(asyncio.Protocol):
    """One connection: ready at the 101, or at the first text frame when ``greeted``."""

    def __init__(self, request: bytes, accept: bytes, greeted: bool) -> None:
        self.request = request
        self.accept_header = b"sec-websocket-accept: " + accept.lower()
        self.greeted = greeted
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.closed_by_server = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.ready.done():
            return  # later frames (pings) do not matter here
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end].lower(), self.buffer[end + 4 :]
            if not head.startswith(b"http/1.1 101 ") or self.accept_header not in head:
                self._fail(head.partition(b"\r\n")[0].decode(errors="replace"))
                return
            self.upgraded = True
            if not self.greeted:
                self.ready.set_result(None)
                return
        if self.buffer:
            opcode = self.buffer[0] & 0x0F
            if opcode == _TEXT:
                self.ready.set_result(None)
            elif opcode == _CLOSE:
                self._fail("closed before the welcome")

    def _fail(self, why: str) -> None:
        self.ready.set_exception(HandshakeFailed(why))
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed_by_server = True
        if not self.ready.done():
            self.ready.set_exception(HandshakeFailed("disconnected before ready"))

    def close(self) -> None:
        if self.transport is not None and not self.closed_by_server:
            self.transport.abort()


async def handshake(
    request: bytes, accept: bytes, address: tuple[str, int], greeted: bool, timeout: float
) -> HandshakeClient:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: HandshakeClient(request, accept, greeted), *address
    )
    await asyncio.wait_for(client.ready, timeout)
    return client
