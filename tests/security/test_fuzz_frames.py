"""Fuzzing the frame and message parsers of a live server (issue 15, point 13).

hypothesis draws, against a real uvicorn serving the echo app under each ``server.ws_protocol``:

- random **frame sequences** sent as raw bytes after a real upgrade (valid and reserved opcodes,
  masked or not, RSV bits, fragmentation in and out of order, control frames of any size, close
  frames with any payload, text that is or is not UTF-8 or JSON, lengths in each of the three
  encodings and announced lengths far beyond the payload and the limit). Each sequence must end in a
  documented outcome (docs/protocol.md): the server's text frames are strict JSON ``echo`` replies
  or ``error`` replies with a documented code, its pongs answer our pings, and it either answers
  the sentinel echo that follows the sequence or closes with a documented code (1000, 1002, 1007,
  1009, 4000, or the code of the client's own close frame), never 1011;
- **well-formed sequences** (echo messages split into fragments, pings between them), whose
  outcome is exact: every echo comes back in order and every ping gets its pong;
- random **JSON values** as messages: a non-object or an object without a string ``type`` gets
  ``invalid_message``, an unknown ``type`` ``unknown_type``, a known one its reply or
  ``validation_failed``, a registered type no plugin handles (``ack``, ``pong``, and ``ping``
  without a heartbeat plugin) nothing at all, text that is not strict JSON ``invalid_json``: one
  reply per message at most.

After each protocol's run, a fresh client still gets a welcome and an echo. Examples are few
(the suite stays fast) and derandomized, so CI runs the same cases every time.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from netrun_ws import create_app
from netrun_ws.codes import ErrorCode
from tests.host.helpers import echo_config, recv_json
from tests.support.raw_ws import Opcode, RawWebSocket, encode_frame
from tests.support.server import serve

pytestmark = pytest.mark.timeout(120)
#: The server fixture lives for the module: its tests share the module's event loop.
on_module_loop = pytest.mark.asyncio(loop_scope="module")

FUZZ = settings(
    deadline=None,
    derandomize=True,  # the same cases on every run and in CI; raise max_examples to explore
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
#: Close codes a fuzzed sequence may end with (docs/protocol.md, "Close codes"), besides the
#: echo of the client's own close code.
DOCUMENTED_CLOSES = {1000, 1002, 1007, 1009, 4000}
ERROR_CODES = {
    value for name, value in vars(ErrorCode).items() if name.isupper() and isinstance(value, str)
}
SENTINEL_SEQ = -1
MAX_MESSAGE_BYTES = 4096
#: How long a sequence's outcome may take: a stall past it fails the example.
OUTCOME_TIMEOUT = 5.0


@dataclass(frozen=True)
class Served:
    addr: str
    protocol: str


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["netrun", "uvicorn"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    config = echo_config(request.param, max_message_bytes=MAX_MESSAGE_BYTES)
    # The frame limit `netrun-ws run` gives uvicorn (cli.build_server): a frame announcing more
    # is refused at its header.
    async with serve(create_app(config), ws_max_size=MAX_MESSAGE_BYTES) as addr:
        yield Served(addr, request.param)
        # Whatever was thrown at it, the server still welcomes and echoes a fresh client.
        async with connect(f"ws://{addr}/ws?user_id=after") as client:
            assert (await recv_json(client))["type"] == "connect"
            await client.send(json.dumps({"type": "echo", "seq": 7, "text": "still here"}))
            assert await recv_json(client) == {"type": "echo", "seq": 7, "text": "still here"}


# ---------------------------------------------------------------------- strategies


@dataclass(frozen=True)
class FuzzFrame:
    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0
    mask: bool = True
    #: A length announced instead of the payload's (always over max_message_bytes, so the
    #: server must refuse at the header instead of waiting for bytes that never come).
    announced: int | None = None

    def encode(self) -> bytes:
        return encode_frame(
            self.opcode,
            self.payload,
            fin=self.fin,
            rsv=self.rsv,
            mask=self.mask,
            length=self.announced,
        )


def echo_bytes(seq: int, text: str) -> bytes:
    return json.dumps({"type": "echo", "seq": seq, "text": text}, ensure_ascii=False).encode()


close_payloads = st.one_of(
    st.just(b""),
    st.binary(min_size=1, max_size=1),  # a 1-byte close payload is a protocol error
    st.builds(
        lambda code, reason: code.to_bytes(2, "big") + reason,
        st.sampled_from(
            [0, 999, 1000, 1001, 1004, 1005, 1006, 1007, 1011, 1015, 2999, 3000, 4999, 5000, 65535]
        ),
        st.one_of(st.text(max_size=20).map(str.encode), st.binary(max_size=20)),
    ),
)
payloads = st.one_of(
    st.binary(max_size=130),
    st.builds(echo_bytes, st.integers(0, 10**6), st.text(max_size=40)),
    st.text(max_size=60).map(str.encode),
    close_payloads,
    st.binary(min_size=4000, max_size=5000),  # over max_message_bytes
)
fuzz_frames = st.builds(
    FuzzFrame,
    opcode=st.sampled_from([0, 1, 1, 1, 2, 3, 7, 8, 9, 9, 10, 11, 15]),
    payload=payloads,
    fin=st.sampled_from([True, True, True, False]),
    rsv=st.sampled_from([0, 0, 0, 0, 0, 0, 1, 2, 4, 7]),
    mask=st.sampled_from([True] * 9 + [False]),
    announced=st.sampled_from([None] * 12 + [5000, 70000, 2**32, 2**63 - 1, 2**64 - 1]),
)


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[list[FuzzFrame], list[dict[str, Any]], list[bytes]]:
    """Echo messages split into 1-4 fragments (split anywhere, even inside a UTF-8 character),
    with pings and unsolicited pongs between fragments; the echoes and pongs they must get."""
    frames: list[FuzzFrame] = []
    echoes: list[dict[str, Any]] = []
    pings: list[bytes] = []
    for seq in range(draw(st.integers(1, 4))):
        text = draw(st.text(max_size=80))
        body = echo_bytes(seq, text)
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        for index, piece in enumerate(pieces):
            opcode = Opcode.TEXT if index == 0 else Opcode.CONTINUATION
            frames.append(FuzzFrame(opcode, piece, fin=index == len(pieces) - 1))
            if draw(st.integers(0, 3)) == 0:
                ping = draw(st.binary(max_size=125))
                frames.append(FuzzFrame(Opcode.PING, ping))
                pings.append(ping)
            elif draw(st.integers(0, 5)) == 0:
                frames.append(FuzzFrame(Opcode.PONG, draw(st.binary(max_size=20))))
        echoes.append({"type": "echo", "seq": seq, "text": text})
    return frames, echoes, pings


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
typed_messages = st.builds(
    lambda kind, fields: {**fields, "type": kind},
    st.sampled_from(
        ["echo", "echo", "refresh", "auth", "ping", "pong", "ack", "since", "Echo", "nope", ""]
    ),
    st.dictionaries(
        st.sampled_from(["seq", "text", "token", "extra", "type2"]), json_values, max_size=3
    ),
)
messages = st.one_of(
    json_values,
    typed_messages,
    st.builds(lambda kind: {"type": kind}, json_values),
)


# ---------------------------------------------------------------------- running a sequence


@dataclass
class Outcome:
    replies: list[dict[str, Any]]
    pongs: list[bytes]
    close: int | None  # the server's close code; None when it answered the sentinel


async def run_frames(addr: str, frames: list[FuzzFrame]) -> Outcome:
    """Send ``frames`` then (ending any open fragmented message first) a sentinel echo; read
    until the sentinel's reply or the server's close."""
    tail: list[bytes] = []
    if _fragment_open(frames):
        tail.append(encode_frame(Opcode.CONTINUATION, b"", fin=True))
    tail.append(encode_frame(Opcode.TEXT, echo_bytes(SENTINEL_SEQ, "end")))
    async with await RawWebSocket.connect(addr, "/ws?user_id=fuzz") as ws:
        assert json.loads(await ws.read_text())["type"] == "connect"
        try:
            data = b"".join(frame.encode() for frame in frames) + b"".join(tail)
            await asyncio.wait_for(ws.send_raw(data), OUTCOME_TIMEOUT)
        except ConnectionError:
            pass  # the server may close while we are still sending; what it said is read below
        return await asyncio.wait_for(_read_outcome(ws), OUTCOME_TIMEOUT)


def _fragment_open(frames: list[FuzzFrame]) -> bool:
    open_ = False
    for frame in frames:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            open_ = not frame.fin
        elif frame.opcode == Opcode.CONTINUATION and frame.fin:
            open_ = False
    return open_


async def _read_outcome(ws: RawWebSocket) -> Outcome:
    outcome = Outcome([], [], None)
    while True:
        try:
            frame = await ws.read_frame(OUTCOME_TIMEOUT)
        except (asyncio.IncompleteReadError, ConnectionError):
            outcome.close = 1006  # dropped without a close frame: never documented
            return outcome
        if frame.opcode == Opcode.CLOSE:
            payload = frame.payload
            outcome.close = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            return outcome
        if frame.opcode == Opcode.PONG:
            outcome.pongs.append(frame.payload)
            continue
        assert frame.opcode == Opcode.TEXT, f"unexpected opcode {frame.opcode} from the server"
        assert frame.fin
        reply = json.loads(frame.payload, parse_constant=_not_strict)
        if reply.get("seq") == SENTINEL_SEQ and reply.get("type") == "echo":
            return outcome
        outcome.replies.append(reply)


def _not_strict(name: str) -> Any:
    raise AssertionError(f"the server sent {name}, which is not JSON")


def client_close_code(frames: list[FuzzFrame]) -> set[int]:
    """The close code(s) the server may echo: those of the client's close frames."""
    return {
        int.from_bytes(frame.payload[:2], "big")
        for frame in frames
        if frame.opcode == Opcode.CLOSE and len(frame.payload) >= 2
    } | {1005, 1000}


def check_reply(reply: dict[str, Any]) -> None:
    assert reply["type"] in ("echo", "error"), reply
    if reply["type"] == "error":
        assert reply["code"] in ERROR_CODES, reply
        assert reply["code"] != ErrorCode.HANDLER_ERROR, reply
        assert len(json.dumps(reply)) < 8192, "an error reply must not echo the input"


# ---------------------------------------------------------------------- the fuzz tests


@on_module_loop
@settings(FUZZ, max_examples=150)
@given(frames=st.lists(fuzz_frames, min_size=1, max_size=6))
async def test_random_frame_sequences_end_in_a_documented_outcome(
    served: Served, frames: list[FuzzFrame]
) -> None:
    outcome = await run_frames(served.addr, frames)
    for reply in outcome.replies:
        check_reply(reply)
    pings = {frame.payload for frame in frames if frame.opcode == Opcode.PING}
    assert set(outcome.pongs) <= pings
    if outcome.close is not None:
        assert outcome.close in DOCUMENTED_CLOSES | client_close_code(frames), (
            outcome.close,
            frames,
        )


@on_module_loop
@settings(FUZZ, max_examples=60)
@given(case=well_formed())
async def test_well_formed_fragmented_sequences_get_every_echo_and_pong(
    served: Served, case: tuple[list[FuzzFrame], list[dict[str, Any]], list[bytes]]
) -> None:
    frames, echoes, pings = case
    outcome = await run_frames(served.addr, frames)
    assert outcome.close is None
    assert outcome.replies == echoes
    # Every ping gets its pong; the pong of the last one may come after the sentinel's echo.
    assert outcome.pongs == pings[: len(outcome.pongs)]


#: What :func:`expected_reply` says of a message the server answers with nothing at all.
NO_REPLY = "no reply"


@functools.cache
def registered_types() -> frozenset[str]:
    """The message types the served echo app registers (its plugins' and netrun_ws.protocol's)."""
    return frozenset(create_app(echo_config()).state.host.registry.types())


def expected_reply(message: Any) -> set[str]:
    """The replies (``echo``, an error code or :data:`NO_REPLY`) a message may get."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return {ErrorCode.INVALID_MESSAGE}
    kind = message["type"]
    if kind == "echo":
        return {"echo", ErrorCode.VALIDATION_FAILED}
    if kind == "refresh":
        return {ErrorCode.INVALID_TOKEN, ErrorCode.VALIDATION_FAILED}
    if kind == "auth":
        return {ErrorCode.FORBIDDEN, ErrorCode.VALIDATION_FAILED}
    if kind == "since":  # read only as a resume's first frame
        return {ErrorCode.INVALID_MESSAGE, ErrorCode.VALIDATION_FAILED}
    if kind in registered_types():
        # A registered type no plugin handles (a ``ping`` too: the echo app runs no heartbeat
        # plugin): validated, then nothing comes back.
        return {NO_REPLY, ErrorCode.VALIDATION_FAILED}
    return {ErrorCode.UNKNOWN_TYPE}


def strict_json(text: str) -> Any:
    """``text`` parsed as strict JSON; ValueError as the server's parser would refuse it."""
    value = json.loads(text, parse_constant=_refuse_constant)
    _refuse_lone_surrogates(value)
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def _refuse_lone_surrogates(value: Any) -> None:
    strings = [value] if isinstance(value, str) else []
    if isinstance(value, dict):
        strings = list(value)
        for item in value.values():
            _refuse_lone_surrogates(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_lone_surrogates(item)
    for text in strings:
        text.encode()  # UnicodeEncodeError (a ValueError) for a lone surrogate


@on_module_loop
@settings(FUZZ, max_examples=120)
@given(data=st.data())
async def test_random_json_gets_one_documented_reply(served: Served, data: st.DataObject) -> None:
    if data.draw(st.booleans()):
        text = json.dumps(data.draw(messages), ensure_ascii=data.draw(st.booleans()))
    else:
        text = data.draw(st.text(max_size=40))
    try:
        wanted = expected_reply(strict_json(text))
    except (ValueError, RecursionError):
        wanted = {ErrorCode.INVALID_JSON}
    async with connect(f"ws://{served.addr}/ws?user_id=json-fuzz") as client:
        assert (await recv_json(client))["type"] == "connect"
        await client.send(text)
        await client.send(echo_bytes(SENTINEL_SEQ, "end").decode())
        reply = await recv_json(client)
        if reply == {"type": "echo", "seq": SENTINEL_SEQ, "text": "end"}:
            assert NO_REPLY in wanted, (text, reply)  # nothing came for the message itself
            return
        check_reply(reply)
        kind = reply["type"] if reply["type"] == "echo" else reply["code"]
        assert kind in wanted, (text, reply)
        # Exactly one reply: the next one is the sentinel's.
        assert (await recv_json(client))["seq"] == SENTINEL_SEQ


def test_the_json_model_agrees_with_the_documented_cases() -> None:
    """The expectations above, on the cases docs/protocol.md names."""
    assert expected_reply([1]) == {ErrorCode.INVALID_MESSAGE}
    assert expected_reply({"type": 3}) == {ErrorCode.INVALID_MESSAGE}
    assert expected_reply({"type": "nope"}) == {ErrorCode.UNKNOWN_TYPE}
    assert expected_reply({"type": "ping"}) == {NO_REPLY, ErrorCode.VALIDATION_FAILED}
    assert expected_reply({"type": "pong"}) == {NO_REPLY, ErrorCode.VALIDATION_FAILED}
    for text in ("NaN", "[Infinity]", '"\\ud800"', "{", ""):
        with pytest.raises(ValueError):
            strict_json(text)
    assert math.isclose(strict_json("1.5"), 1.5)
