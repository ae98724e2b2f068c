"""The publish/revoke API refuses a body over ``limits.max_message_bytes`` before it arrives
(issue 15, point 7).

A declared ``Content-Length`` over the limit is answered 413 at once, without waiting for (or
reading) the body; a chunked body, or one that never ends, is read only up to the limit. The 413
carries ``Connection: close`` and the server closes the connection, so it never keeps reading
what the client still sends. Every case talks raw HTTP/1.1 over a TCP socket to a real uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest

from netrun_ws import create_app
from tests.host.helpers import base_config
from tests.support.server import serve

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("served_ws_protocol")]

KEY = "body-limit-test-key-0123456789"
LIMIT = 4096
ROUTES = ("/api/publish", "/api/revoke")


@contextlib.asynccontextmanager
async def api() -> AsyncIterator[str]:
    limits = {"max_message_bytes": LIMIT}
    config = base_config(server={"path": "/ws", "api_key": KEY}, limits=limits)
    async with serve(create_app(config)) as addr:
        yield addr


@contextlib.asynccontextmanager
async def raw(addr: str) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    host, _, port = addr.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        yield reader, writer
    finally:
        writer.transport.abort()


def head(route: str, *headers: str) -> bytes:
    lines = [
        f"POST {route} HTTP/1.1",
        "Host: test",
        f"Authorization: Bearer {KEY}",
        "Content-Type: application/json",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], object]:
    """Status, headers (lower-case names) and JSON body of one response."""
    raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = raw_head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines if ": " in line)
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    return int(status_line.split(" ")[1]), headers, json.loads(body)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True when the server ends the connection (EOF or reset) within a few seconds."""
    try:
        async with asyncio.timeout(5):
            while await reader.read(65536):
                pass
    except ConnectionError:
        return True
    return True


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("declared", [LIMIT + 1, 40 * 1024 * 1024, 10**18])
async def test_a_declared_length_over_the_limit_is_refused_before_the_body(
    route: str, declared: int
) -> None:
    async with api() as addr, raw(addr) as (reader, writer):
        # Only a few bytes of the announced body are ever sent: the answer cannot wait for them.
        writer.write(head(route, f"Content-Length: {declared}") + b'{"user": ')
        await writer.drain()
        status, headers, body = await response(reader)
        assert status == 413
        assert body == {"error": f"body over {LIMIT} bytes"}
        assert headers["connection"] == "close"
        assert await closed_by_server(reader)


@pytest.mark.parametrize("route", ROUTES)
async def test_an_unauthorized_upload_is_not_read(route: str) -> None:
    async with api() as addr, raw(addr) as (reader, writer):
        request = head(route, "Content-Length: 41943040").replace(KEY.encode(), b"wrong-key")
        writer.write(request + b"x" * 1000)
        await writer.drain()
        status, headers, body = await response(reader)
        assert (status, body) == (401, {"error": "unauthorized"})
        assert headers["connection"] == "close"
        assert await closed_by_server(reader)


@pytest.mark.parametrize("route", ROUTES)
async def test_a_chunked_body_is_cut_at_the_limit(route: str) -> None:
    chunk = b"x" * 1024
    async with api() as addr, raw(addr) as (reader, writer):
        writer.write(head(route, "Transfer-Encoding: chunked"))
        # Four times the limit, and never the final zero-length chunk: the body has no end, so
        # an answer proves the server stopped reading at the limit instead of waiting for it.
        for _ in range(4 * LIMIT // len(chunk)):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        status, headers, body = await response(reader)
        assert status == 413
        assert body == {"error": f"body over {LIMIT} bytes"}
        assert headers["connection"] == "close"
        assert await closed_by_server(reader)


async def test_a_client_still_sending_is_cut_off() -> None:
    """A 40 MB chunked upload is answered and dropped long before the client could finish."""
    chunk = b"%x\r\n%s\r\n" % (65536, b"y" * 65536)
    total = 40 * 1024 * 1024
    async with api() as addr, raw(addr) as (reader, writer):
        writer.write(head("/api/publish", "Transfer-Encoding: chunked"))
        answer = asyncio.ensure_future(response(reader))
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < total and not answer.done():
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), 5)
                sent += len(chunk)
        # The server closes while data is still arriving, so the kernel may reset the
        # connection before the client reads the 413: either way the exchange is over.
        try:
            status = (await answer)[0]
        except ConnectionError:
            status = None
        assert status in (413, None)
        # It ended while the client was still sending (socket buffers hold a few MB at most):
        # the server did not take in the whole body first.
        assert sent < total / 2


async def test_a_body_within_the_limit_is_still_read_whole() -> None:
    data = {"user": "nobody", "data": {"type": "t", "pad": "z" * (LIMIT - 100)}}
    payload = json.dumps(data).encode()
    assert len(payload) <= LIMIT
    async with api() as addr, raw(addr) as (reader, writer):
        # Chunked, in small pieces: the limit counts bytes received, not frames or chunks.
        writer.write(head("/api/publish", "Transfer-Encoding: chunked"))
        for start in range(0, len(payload), 500):
            piece = payload[start : start + 500]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        status, _, body = await response(reader)
        assert (status, body) == (200, {"local": 0, "remote_nodes": 0})
