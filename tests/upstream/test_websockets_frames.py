"""The whole-frame fast path of netrun-ws's websocket protocol reads exactly what websockets' parser
reads: the same events reach the app, the same bytes go back (pongs, close frames), the same
state follows, whatever the frames and however the reads cut them. And the fence's probe of
websockets' parser state (``parser_idle``) says idle only between frames."""

from __future__ import annotations

import asyncio
import itertools
import random
import struct
import uuid
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState
from websockets.protocol import State
from websockets.server import ServerProtocol

from netrun_ws._upstream import websockets as fence
from netrun_ws.transport import websocket as transport
from netrun_ws.transport.websocket import NetrunWebSocketProtocol
from tests.support.raw_ws import Opcode, close_payload, encode_frame
from tests.support.upgrade import UPGRADE
from tests.support.waiting import eventually

MAX_SIZE = 4096


class MemoryTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = self.eof = False

    def write(self, data: Any) -> None:
        assert not self.eof, "written after the end of stream"
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 4000) if name in ("sockname", "peername") else default


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    # Tests feed the protocol without awaiting: every event is still queued when they compare.
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def _opened() -> tuple[NetrunWebSocketProtocol, MemoryTransport]:
    config = uvicorn.Config(
        _app, ws=NetrunWebSocketProtocol, ws_max_size=MAX_SIZE, lifespan="off", ws_ping_interval=0
    )
    config.load()
    protocol = NetrunWebSocketProtocol(config, ServerState(), {})
    memory = MemoryTransport()
    protocol.connection_made(memory)
    protocol.data_received(UPGRADE + b"\r\n")
    await eventually(lambda: protocol.conn.state is State.OPEN, interval=0, what="the accept")
    protocol.transport.flush()
    del memory.written[:]
    return protocol, memory


def _frame_127(payload: bytes) -> bytes:
    # A small payload announced with a 64-bit length: legal, and left to websockets.
    key = b"\x01\x02\x03\x04"
    return (
        struct.pack("!BBQ", 0x81, 0x80 | 127, len(payload)) + key + fence.apply_mask(payload, key)
    )


FRAMES: list[bytes] = [
    encode_frame(Opcode.TEXT, b'{"type":"echo","seq":1}'),
    encode_frame(Opcode.TEXT, b""),
    encode_frame(Opcode.TEXT, "é".encode() * 100),  # a 16-bit length
    encode_frame(Opcode.BINARY, bytes(range(256))),
    encode_frame(Opcode.PING, b"p"),
    encode_frame(Opcode.PONG, b"q"),
    encode_frame(Opcode.TEXT, b"frag", fin=False) + encode_frame(Opcode.CONTINUATION, b"ment"),
    encode_frame(Opcode.TEXT, b"a", fin=False)
    + encode_frame(Opcode.PING, b"mid")
    + encode_frame(Opcode.CONTINUATION, b"b"),
    _frame_127(b"sixty-four"),
]
#: Frames after which the connection fails or closes (one at most per stream, at its end).
ENDINGS: list[bytes] = [
    encode_frame(Opcode.TEXT, b"\xff\xfe"),  # invalid UTF-8: 1007
    encode_frame(Opcode.TEXT, b"unmasked", mask=False),  # 1002
    encode_frame(Opcode.TEXT, b"rsv", rsv=4),  # 1002
    encode_frame(Opcode.TEXT, b"x" * (MAX_SIZE + 1)),  # 1009
    encode_frame(Opcode.CONTINUATION, b"orphan"),  # 1002
    encode_frame(Opcode.CLOSE, close_payload(1000, "bye")),
]


async def _snapshot(protocol: NetrunWebSocketProtocol, memory: MemoryTransport) -> Any:
    protocol.transport.flush()
    events = [event for event, _size in protocol.queue._events]
    seen = events, bytes(memory.written), protocol.conn.state, protocol.close_sent, memory.eof
    protocol.connection_lost(None)  # the app reads on to the disconnect and returns
    await asyncio.gather(*protocol.tasks)
    return seen


async def _read(stream: bytes, cuts: list[int], fast: bool, monkeypatch: Any) -> Any:
    with monkeypatch.context() as patch:
        if not fast:  # websockets' parser alone, kept between frames as websockets keeps it
            patch.setattr(transport, "parser_idle", lambda conn: False)
            patch.setattr(transport, "drop_idle_parser", lambda conn: None)
        protocol, memory = await _opened()
        edges = [0, *cuts, len(stream)]
        for start, stop in itertools.pairwise(edges):
            if start < stop:
                protocol.data_received(stream[start:stop])
        return await _snapshot(protocol, memory)


async def test_the_fast_path_reads_what_websockets_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    chance = random.Random(6455)
    for _case in range(300):
        frames = chance.choices(FRAMES, k=chance.randint(1, 8))
        if chance.random() < 0.5:
            frames.append(chance.choice(ENDINGS))
            frames.extend(chance.choices(FRAMES, k=chance.randint(0, 2)))  # after the end
        stream = b"".join(frames)
        count = min(len(stream) - 1, chance.randint(0, 4))
        cuts = sorted(chance.sample(range(1, len(stream)), count))
        fast = await _read(stream, cuts, True, monkeypatch)
        slow = await _read(stream, cuts, False, monkeypatch)
        assert fast == slow, (frames, cuts)


async def test_whole_frames_in_one_read_skip_websockets_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not a fast path in name only: eight whole text frames never reach websockets' parser.
    protocol, _memory = await _opened()
    fed: list[bytes] = []
    monkeypatch.setattr(protocol.conn, "receive_data", fed.append)
    protocol.data_received(b"".join(encode_frame(Opcode.TEXT, b"%d" % n) for n in range(8)))
    assert fed == []
    assert [event["text"] for event, _size in protocol.queue._events] == [str(n) for n in range(8)]
    protocol.data_received(encode_frame(Opcode.PING, b""))
    assert len(fed) == 1  # a control frame is websockets' business
    monkeypatch.undo()
    await _snapshot(protocol, _memory)


async def test_an_idle_connection_keeps_no_parser_and_a_fresh_one_reads_on() -> None:
    protocol, memory = await _opened()
    assert protocol.conn.parser is None  # open, nothing read yet
    protocol.data_received(encode_frame(Opcode.PING, b"p"))
    assert memory.written or protocol.transport._buffer  # the pong
    assert protocol.conn.parser is None  # let go once the ping was read
    protocol.data_received(encode_frame(Opcode.TEXT, b"frag", fin=False))
    assert protocol.conn.parser is not None  # a fragmented message is open: kept
    protocol.data_received(
        encode_frame(Opcode.PING, b"mid") + encode_frame(Opcode.CONTINUATION, b"ment")
    )
    assert protocol.conn.parser is None
    whole = encode_frame(Opcode.TEXT, b"cut")
    protocol.data_received(whole[:3])
    assert protocol.conn.parser is not None  # a frame cut by the read: its parser waits
    protocol.data_received(whole[3:])
    assert protocol.conn.parser is None
    texts = [event.get("text") for event, _size in protocol.queue._events]
    assert texts == ["fragment", "cut"]
    await _snapshot(protocol, memory)


def test_the_parser_is_let_go_only_when_open_and_between_frames() -> None:
    conn = fence.ParsedRequestServerProtocol()
    assert conn.parser is None  # started at the first bytes, not before
    conn.state = State.OPEN
    frame = encode_frame(Opcode.TEXT, b"hello")
    conn.receive_data(frame[:2])
    fence.drop_idle_parser(conn)
    assert conn.parser is not None  # in the middle of a frame
    conn.receive_data(frame[2:])
    fence.drop_idle_parser(conn)
    assert conn.parser is None
    conn.receive_data(encode_frame(Opcode.CLOSE, close_payload(1000, "bye")))
    assert conn.state is State.CLOSING
    fence.drop_idle_parser(conn)
    assert conn.parser is not None  # closing: websockets' own parser or discarder stays
    stock = ServerProtocol()  # reads the request first: never restarted from scratch
    stock.state = State.OPEN
    fence.drop_idle_parser(stock)
    assert stock.parser is not None


def test_the_parser_is_idle_only_between_frames() -> None:
    conn = fence.ParsedRequestServerProtocol()
    conn.state = State.OPEN
    frame = encode_frame(Opcode.TEXT, b"hello")
    assert fence.parser_idle(conn)
    for cut in range(1, len(frame)):
        conn.receive_data(frame[:cut])
        assert not fence.parser_idle(conn), cut
        conn.receive_data(frame[cut:])
        assert fence.parser_idle(conn)
        conn.events_received()
    conn.receive_data(encode_frame(Opcode.TEXT, b"open", fin=False))
    assert not fence.parser_idle(conn)  # a fragmented message is open
    conn.receive_data(encode_frame(Opcode.CONTINUATION, b"ed"))
    assert fence.parser_idle(conn)


def test_the_fence_shuts_when_the_parser_state_cannot_be_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert fence.refusal() is None
    monkeypatch.setattr(fence, "_AT_EOF", None)
    assert "at_eof" in (fence.refusal() or "")


async def test_an_open_connection_keeps_no_uuid_and_no_empty_lists() -> None:
    first, memory = await _opened()
    second, other = await _opened()
    conn = first.conn
    assert "id" not in vars(conn)  # websockets' random UUID went at once
    assert isinstance(conn.id, uuid.UUID) and conn.id == first.conn.id  # stable while open
    assert conn.id != second.conn.id
    assert conn.extensions is fence._NO_EXTENSIONS and not conn.extensions
    assert first.frames is transport._NO_FRAMES  # no list of its own between messages
    first.data_received(
        encode_frame(Opcode.TEXT, b"frag", fin=False) + encode_frame(Opcode.CONTINUATION, b"ment")
    )
    assert [event.get("text") for event, _size in first.queue._events] == ["fragment"]
    assert first.frames is transport._NO_FRAMES
    await _snapshot(first, memory)
    await _snapshot(second, other)


def test_negotiated_extensions_are_still_kept() -> None:
    from websockets.datastructures import Headers
    from websockets.extensions.permessage_deflate import (
        PerMessageDeflate,
        ServerPerMessageDeflateFactory,
    )
    from websockets.http11 import Request

    conn = fence.ParsedRequestServerProtocol(extensions=[ServerPerMessageDeflateFactory()])
    headers = Headers(
        {
            "Host": "localhost",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Extensions": "permessage-deflate",
        }
    )
    response = conn.accept(Request("/", headers))
    assert response.status_code == 101
    assert [type(extension) for extension in conn.extensions] == [PerMessageDeflate]
    assert response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
