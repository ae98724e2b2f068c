"""Hand-written websocket upgrade requests: what websockets' parser makes of them, and the first
lines a server answers them with."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from websockets.http11 import Request
from websockets.streams import StreamReader

#: A valid upgrade request's head, without its closing blank line.
UPGRADE = (
    b"GET /ws?user_id=u HTTP/1.1\r\nhost: 127.0.0.1:8000\r\nupgrade: websocket\r\n"
    b"connection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"sec-websocket-version: 13\r\nsec-websocket-protocol: netrun.v1, bearer.x\r\n"
)


def websockets_parse(data: bytes) -> Request:
    """What websockets' own parser makes of ``data`` (it raises on what it refuses)."""
    reader = StreamReader()
    reader.feed_data(data)
    parser = Request.parse(reader.read_line)
    try:
        while True:
            next(parser)
    except StopIteration as done:
        request: Request = done.value
        return request


def header_fields(data: bytes) -> list[tuple[bytes, bytes]]:
    """The header fields of ``data`` as httptools gives them to uvicorn (lower-case names)."""
    lines = data.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    return [(name.lower(), value.strip()) for name, _, value in (x.partition(b":") for x in lines)]


@contextlib.asynccontextmanager
async def _sent(addr: str, request: bytes) -> AsyncIterator[asyncio.StreamReader]:
    host, _, port = addr.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        yield reader
    finally:
        writer.close()


async def upgrade_status(addr: str, request: bytes) -> bytes:
    """The status line the server at ``addr`` answers ``request`` with (TimeoutError: none)."""
    async with _sent(addr, request) as reader:
        return (await asyncio.wait_for(reader.readline(), 5)).rstrip()


async def response_head(addr: str, request: bytes) -> list[bytes]:
    """The lines of the response head the server answers ``request`` with, but its Date."""
    async with _sent(addr, request) as reader:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return [line for line in head.split(b"\r\n") if not line.lower().startswith(b"date:")]
