"""A raw-socket WebSocket client that sends hand-built frames (RFC 6455), for hostile-input tests.

The ``websockets`` client refuses to send malformed frames, so this one builds every byte itself:
``send_frame`` takes the opcode, FIN, RSV bits, masking and payload as given, including illegal
combinations. It reads server frames with a deadline and reports a close frame's code, or
:data:`ABNORMAL_CLOSURE` (1006) when the server dropped the TCP connection without one.

    async with await RawWebSocket.connect("127.0.0.1:8000", "/ws?user_id=eve") as ws:
        await ws.send_frame(Opcode.TEXT, b"\\xff\\xfe")
        assert (await ws.expect_close()).code == 1007
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import TracebackType

#: RFC 6455 section 1.3: appended to the key before hashing into Sec-WebSocket-Accept.
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: What a client reports when the TCP connection ended without a close frame (never on the wire).
ABNORMAL_CLOSURE = 1006
#: A close frame without a status code (RFC 6455 section 7.1.5).
NO_STATUS_RECEIVED = 1005


class Opcode(IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class HandshakeRefused(Exception):
    """The server answered the upgrade request with something other than 101."""

    def __init__(self, status: int, head: str, body: bytes) -> None:
        super().__init__(f"handshake refused with HTTP {status}")
        self.status = status
        self.head = head
        self.body = body


@dataclass(frozen=True)
class Frame:
    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0

    @property
    def text(self) -> str:
        return self.payload.decode()


@dataclass(frozen=True)
class Close:
    """How the server ended the connection: ``code`` 1006 means no close frame arrived."""

    code: int
    reason: str = ""


def encode_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    length: int | None = None,
) -> bytes:
    """One frame's bytes. ``rsv`` is the 3-bit RSV1..RSV3 value; ``length`` overrides the
    announced payload length (to lie about it); ``mask=False`` sends an unmasked client frame."""
    first = (0x80 if fin else 0) | ((rsv & 0x7) << 4) | (opcode & 0xF)
    announced = len(payload) if length is None else length
    mask_bit = 0x80 if mask else 0
    if announced < 126:
        header = struct.pack("!BB", first, mask_bit | announced)
    elif announced < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, announced)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, announced)
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + _apply_mask(payload, key)


def _apply_mask(payload: bytes, key: bytes) -> bytes:
    # XOR in one big-integer operation: fast enough for megabyte payloads.
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return masked.to_bytes(len(payload), "big")


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


class RawWebSocket:
    """A client WebSocket over a plain TCP stream; every frame is built by the caller."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls,
        addr: str,
        path: str = "/ws",
        *,
        headers: Mapping[str, str] | None = None,
        recv_buffer: int | None = None,
        read_limit: int = 1 << 16,
        timeout: float = 5.0,
    ) -> RawWebSocket:
        """Open TCP to ``addr`` ("host:port") and upgrade; raises :class:`HandshakeRefused`.

        ``recv_buffer`` sets SO_RCVBUF before connecting (a small one makes a client that stops
        reading back up the server quickly); ``read_limit`` bounds what asyncio buffers for us.
        """
        host, _, port = addr.rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if recv_buffer is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_connect(sock, (host, int(port))), timeout)
            reader, writer = await asyncio.open_connection(sock=sock, limit=read_limit)
        except BaseException:
            sock.close()
            raise
        client = cls(reader, writer)
        try:
            await asyncio.wait_for(client._handshake(addr, path, headers or {}), timeout)
        except BaseException:
            client.abort()
            raise
        return client

    async def _handshake(self, addr: str, path: str, headers: Mapping[str, str]) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {addr}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status = int(head.split(" ", 2)[1])
        if status != 101:
            body = await self.reader.read(65536)
            raise HandshakeRefused(status, head, body)
        expected = base64.b64encode(hashlib.sha1(key.encode() + _ACCEPT_GUID).digest()).decode()
        accepts = [
            line.split(":", 1)[1].strip()
            for line in head.split("\r\n")
            if line.lower().startswith("sec-websocket-accept:")
        ]
        if accepts != [expected]:
            raise ConnectionError(f"bad Sec-WebSocket-Accept in {head!r}")

    # ------------------------------------------------------------ sending

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_frame(
        self,
        opcode: int,
        payload: bytes = b"",
        *,
        fin: bool = True,
        rsv: int = 0,
        mask: bool = True,
    ) -> None:
        await self.send_raw(encode_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask))

    async def send_text(self, text: str) -> None:
        await self.send_frame(Opcode.TEXT, text.encode())

    async def send_close(self, code: int = 1000, reason: str = "") -> None:
        await self.send_frame(Opcode.CLOSE, close_payload(code, reason))

    # ------------------------------------------------------------ receiving

    async def read_frame(self, timeout: float = 5.0) -> Frame:
        """The next frame from the server; ``asyncio.IncompleteReadError`` if the TCP stream
        ended, ``TimeoutError`` after ``timeout`` seconds."""
        return await asyncio.wait_for(self._read_frame(), timeout)

    async def _read_frame(self) -> Frame:
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        key = await self.reader.readexactly(4) if second & 0x80 else None
        payload = await self.reader.readexactly(length)
        if key is not None:  # servers must not mask; unmask anyway to report what was sent
            payload = _apply_mask(payload, key)
        return Frame(
            opcode=first & 0xF, payload=payload, fin=bool(first & 0x80), rsv=first >> 4 & 7
        )

    async def read_text(self, timeout: float = 5.0) -> str:
        """The next text frame's payload, skipping pings; raises if the server closes."""
        while True:
            frame = await self.read_frame(timeout)
            if frame.opcode == Opcode.TEXT:
                return frame.text
            if frame.opcode == Opcode.CLOSE:
                raise ConnectionError(f"server closed: {_parse_close(frame.payload)}")

    async def expect_close(self, timeout: float = 5.0) -> Close:
        """Read (and discard) frames until the server's close frame, or the end of the stream.

        Returns the close frame's code and reason, or code 1006 when the stream ended without
        one. Raises ``TimeoutError`` if neither happens within ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                frame = await self.read_frame(max(0.0, deadline - loop.time()))
            except (asyncio.IncompleteReadError, ConnectionError):
                return Close(ABNORMAL_CLOSURE)
            if frame.opcode == Opcode.CLOSE:
                return _parse_close(frame.payload)

    # ------------------------------------------------------------ teardown

    def abort(self) -> None:
        """Drop the TCP connection at once (no close handshake)."""
        transport = self.writer.transport
        transport.abort()

    async def aclose(self) -> None:
        """Close the TCP stream (no WebSocket close handshake); never raises."""
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)

    async def __aenter__(self) -> RawWebSocket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.abort()


def _parse_close(payload: bytes) -> Close:
    if len(payload) < 2:
        return Close(NO_STATUS_RECEIVED)
    (code,) = struct.unpack("!H", payload[:2])
    return Close(code, payload[2:].decode(errors="replace"))


__all__ = [
    "ABNORMAL_CLOSURE",
    "NO_STATUS_RECEIVED",
    "Close",
    "Frame",
    "HandshakeRefused",
    "Opcode",
    "RawWebSocket",
    "close_payload",
    "encode_frame",
]
