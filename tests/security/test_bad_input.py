"""Bad input over real sockets against the real ``netrun-ws run``: every case gets its documented
error reply (docs/protocol.md) or close code, no traceback reaches the server log, and a
bystander connection keeps getting prompt answers.

Two sources of cases:

- hypothesis messages derived from the server's own JSON Schema
  (``app.state.host.registry.json_schema()``): valid instances, then mutations whose outcome is
  known by construction (unknown ``type``, extra field, missing field, wrong type, huge numbers,
  deep nesting, unicode edge cases, long strings, broken JSON);
- hand-built frames from a raw socket (tests/support/raw_ws.py): invalid UTF-8, binary frames,
  oversize whole and fragmented messages, oversize/fragmented control frames, unmasked frames,
  reserved opcodes and RSV bits, bad close frames.

Close codes 1002 (protocol error) and 1007 (invalid UTF-8) come from uvicorn's WebSocket layer
and follow RFC 6455 section 7.4.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect

from netrun_ws import create_app
from netrun_ws.codes import CloseCode, ErrorCode
from tests.support.cli_server import RunningServer, run_cli
from tests.support.raw_ws import Opcode, RawWebSocket, close_payload, encode_frame
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
MAX_MESSAGE_BYTES = 65536
#: RFC 6455 close codes sent by uvicorn's WebSocket layer (netrun_ws.codes has no name for them).
PROTOCOL_ERROR = 1002
INVALID_PAYLOAD = 1007
#: Answers slower than this count as the server being disturbed.
PROMPT_SECONDS = 1.0
#: The JSON parser refuses nesting deeper than 200 levels; stay clear of it on both sides.
SHALLOW_DEPTH = 150
DEEP_DEPTH = 260
#: The JSON parser refuses integers longer than this many digits.
MAX_NUMBER_DIGITS = 4300
#: The probe's and bystander's user ids: nothing hypothesis draws will collide with them.
PROBE_USER = "probe-7f3a9c"
BYSTANDER_USER = "bystander-7f3a9c"
#: Chat plugin default (max_rooms_per_connection).
MAX_ROOMS = 20

#: ``Case.expect`` for a message the server accepts.
VALID = "valid"


def server_config(ws_protocol: str = "netrun") -> dict[str, Any]:
    """The default-like config; only limits the suite would trip by itself are raised."""
    return {
        "server": {"path": "/ws", "allowed_origins": [], "ws_protocol": ws_protocol},
        "limits": {
            "max_message_bytes": MAX_MESSAGE_BYTES,
            # The probe sends a few hundred messages back to back; 10 consecutive errors
            # (the default) still close, since every case is followed by a valid marker.
            "messages_per_second": 100000,
            "max_connections_per_ip": 1000,
        },
        "auth": {"plugin": "anonymous"},
        "store": {"plugin": "memory"},
        "heartbeat": {"plugin": "ping", "interval": 600, "timeout": 1800},
        "protocol": {"plugin": "json", "schemas": ["netrun_ws.protocol"]},
        "metrics": [
            {"plugin": "prometheus", "path": "/metrics"},
            {"plugin": "json", "path": "/metrics.json"},
        ],
        "plugins_dir": str(ROOT / "plugins"),
        "plugins": ["chat"],
    }


# ---------------------------------------------------------------------- schema -> strategies


def json_values() -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(10**18), 10**18)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=8,
    )


def iso_datetimes() -> st.SearchStrategy[str]:
    offsets = st.none() | st.integers(-1439, 1439).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    )
    return st.builds(
        lambda moment, tz: moment.replace(tzinfo=tz).isoformat(),
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
        offsets,
    )


class Schema:
    """The registry's JSON Schema, as hypothesis strategies and facts about each message type."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.defs: Mapping[str, Any] = schema["$defs"]
        mapping: Mapping[str, str] = schema["discriminator"]["mapping"]
        self.models = {tag: self.resolve({"$ref": ref}) for tag, ref in mapping.items()}
        self.tags = sorted(self.models)

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            schema = self.defs[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    def properties(self, tag: str) -> Mapping[str, Any]:
        props: Mapping[str, Any] = self.models[tag].get("properties", {})
        return props

    def required(self, tag: str) -> list[str]:
        return [name for name in self.models[tag].get("required", ()) if name != "type"]

    def kinds(self, schema: Mapping[str, Any]) -> set[str]:
        """JSON kinds a property schema admits; "any" for an unconstrained one (JsonValue)."""
        schema = self.resolve(schema)
        for union in ("anyOf", "oneOf"):
            if union in schema:
                return set().union(*(self.kinds(option) for option in schema[union]))
        if "type" not in schema:
            return {"any"}
        kind = schema["type"]
        if kind == "string" and schema.get("format") == "date-time":
            return {"string", "number"}  # datetimes also validate from unix timestamps
        return {kind}

    def value(self, schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
        schema = self.resolve(schema)
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        for union in ("anyOf", "oneOf"):
            if union in schema:
                return st.one_of([self.value(option) for option in schema[union]])
        kind = schema.get("type")
        if kind is None:
            return json_values()
        if kind == "string":
            return self._string(schema)
        if kind == "integer":
            return st.integers(schema.get("minimum"), schema.get("maximum"))
        if kind == "number":
            return st.integers(-(10**15), 10**15) | st.floats(allow_nan=False, allow_infinity=False)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        if kind == "array":
            return st.lists(self.value(schema.get("items", {})), max_size=3)
        if kind == "object" and "properties" in schema:  # a nested model
            required = set(schema.get("required", ()))
            fields = {name: self.value(prop) for name, prop in schema["properties"].items()}
            return st.fixed_dictionaries(
                {name: value for name, value in fields.items() if name in required},
                optional={name: value for name, value in fields.items() if name not in required},
            )
        if kind == "object":
            extra = schema.get("additionalProperties", {})
            values = self.value(extra if isinstance(extra, Mapping) else {})
            return st.dictionaries(st.text(max_size=10), values, max_size=3)
        raise AssertionError(f"schema kind {kind!r} has no strategy yet")

    def _string(self, schema: Mapping[str, Any]) -> st.SearchStrategy[str]:
        if schema.get("format") == "date-time":
            return iso_datetimes()
        low = schema.get("minLength", 0)
        high = min(schema.get("maxLength", 40), 40)
        pattern = schema.get("pattern")
        if pattern is not None:
            return st.from_regex(pattern, fullmatch=True).filter(lambda s: low <= len(s) <= high)
        return st.text(min_size=low, max_size=high)

    @st.composite
    def message(draw: st.DrawFn, self: Schema, tag: str) -> dict[str, Any]:
        """A valid instance of ``tag``: its required fields and some optional ones."""
        required = set(self.required(tag))
        message: dict[str, Any] = {"type": tag}
        for name, prop in self.properties(tag).items():
            if name != "type" and (name in required or draw(st.booleans())):
                message[name] = draw(self.value(prop))
        return message

    def messages(self) -> st.SearchStrategy[dict[str, Any]]:
        return st.sampled_from(self.tags).flatmap(lambda tag: self.message(tag))


# ---------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One text frame and what docs/protocol.md says the server answers.

    ``expect``: an ErrorCode value, or VALID for an accepted message (its replies then follow
    the message type). ``secret``: text that must not appear in the reply (inputs are never
    echoed in validation errors).
    """

    frame: str
    expect: str
    message: dict[str, Any] | None = None
    secret: str | None = None


def dumps(message: Any, ascii_only: bool = True) -> str:
    return json.dumps(message, ensure_ascii=ascii_only)


CANARY = "canary-5e1b"


def with_canary(value: Any) -> Any:
    return {"v": [value, CANARY]}


@dataclass
class Probe:
    """One long-lived client that sends a case, then a valid marker (a direct message to itself),
    and collects what came back before the marker. The marker also resets the server's
    consecutive-error counter, so many invalid cases can share the connection."""

    client: ClientConnection
    rooms: set[str] = field(default_factory=set)
    markers: int = 0

    async def exchange(self, frame: str | bytes) -> list[dict[str, Any]]:
        self.markers += 1
        marker = f"marker-{self.markers}"
        await self.client.send(frame)
        await self.client.send(dumps({"type": "direct", "to": PROBE_USER, "text": marker}))
        replies: list[dict[str, Any]] = []
        while True:
            reply = json.loads(await asyncio.wait_for(self.client.recv(), 5))
            reply.pop("pos", None)  # room and user messages carry a history position
            if reply == {"type": "direct", "from": PROBE_USER, "text": marker}:
                break
            replies.append(reply)
        ack = json.loads(await asyncio.wait_for(self.client.recv(), 5))
        assert ack == {"type": "ack", "delivered": 1}
        return replies

    def expected_for_valid(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """The replies docs/protocol.md and plugins/chat.py promise for an accepted message;
        only the listed keys are compared. Tracks the probe's rooms."""
        tag = message["type"]
        room = str(message.get("room"))
        if tag == "ping":
            return [{"type": "pong"}]
        if tag == "auth":
            return [error(ErrorCode.FORBIDDEN)]  # already authenticated
        if tag == "refresh":
            return [error(ErrorCode.INVALID_TOKEN)]  # anonymous auth verifies no tokens
        if tag == "since":
            return [error(ErrorCode.INVALID_MESSAGE)]  # only the first frame of a resume
        if tag == "join":
            if room in self.rooms or len(self.rooms) < MAX_ROOMS:
                self.rooms.add(room)
                return [{"type": "joined", "room": room}]
            return [error(ErrorCode.FORBIDDEN)]
        if tag == "leave":
            if room in self.rooms:
                self.rooms.discard(room)
                return [{"type": "left", "room": room}]
            return [error(ErrorCode.NOT_FOUND)]
        if tag == "say":
            if room in self.rooms:
                # The text comes back unchanged, whatever its characters.
                said = {"type": "said", "room": room, "user_id": PROBE_USER}
                return [{**said, "text": message["text"]}]
            return [error(ErrorCode.FORBIDDEN)]
        if tag == "direct":
            return [{"type": "ack", "delivered": 0}]
        return []


def error(code: str) -> dict[str, Any]:
    return {"type": "error", "code": code}


def check_error_shape(reply: Mapping[str, Any]) -> None:
    assert set(reply) == {"type", "error", "code", "details"}, reply
    assert isinstance(reply["error"], str) and reply["error"], reply
    if reply["code"] == ErrorCode.VALIDATION_FAILED:
        details = reply["details"]
        assert set(details) == {"type", "error_count", "errors"}, details
        assert details["error_count"] >= 1
        for item in details["errors"]:
            assert {"loc", "msg", "type"} <= set(item) <= {"loc", "msg", "type", "ctx"}, item


def matches(reply: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    return all(reply.get(key) == value for key, value in expected.items())


# ---------------------------------------------------------------------- fixtures


class LogWatch:
    """Reads the server's output in consecutive windows, so every line is checked exactly once."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.cursor = 0
        self.marks = 0

    async def catch_up(self, http: httpx.AsyncClient) -> None:
        """Wait until every line the server wrote before now has been read from its output.

        The server is asked for a page it logs (uvicorn's access line, with a mark in the
        query), and its output is read until that line: everything it wrote earlier came
        through the pipe before it."""
        self.marks += 1
        path = f"/healthz?log-mark={self.marks}"
        assert (await http.get(path)).status_code == 200

        def marked() -> bool:
            return any(path in line for line in self.server.output[self.cursor :])

        await eventually(marked, timeout=10, interval=0.001, what=f"the log line of GET {path}")

    def new_text(self) -> str:
        lines = self.server.output[self.cursor :]
        self.cursor += len(lines)
        return "".join(lines)


@dataclass
class Target:
    server: RunningServer
    bystander: ClientConnection
    log: LogWatch
    http: httpx.AsyncClient
    ws_protocol: str
    probe: Probe | None = None
    serial: int = 0

    def path(self, prefix: str = "raw") -> str:
        self.serial += 1
        return f"/ws?user_id={prefix}-{self.serial}"

    async def open_probe(self) -> Probe:
        """The probe connection, reopened if a previous case got it closed."""
        if self.probe is None or self.probe.client.close_code is not None:
            client = await connect(f"ws://{self.server.addr}/ws?user_id={PROBE_USER}")
            welcome = json.loads(await asyncio.wait_for(client.recv(), 5))
            assert welcome["type"] == "connect"
            self.probe = Probe(client)
        return self.probe

    async def raw(self) -> RawWebSocket:
        ws = await RawWebSocket.connect(self.server.addr, self.path())
        assert json.loads(await ws.read_text())["type"] == "connect"
        return ws

    async def assert_unharmed(self, *, check_log: bool = True) -> None:
        """The process lives, the bystander answers promptly, no traceback was logged."""
        assert self.server.process.returncode is None, self.server.text()[-3000:]
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self.bystander.send('{"type": "ping"}')
        while json.loads(await asyncio.wait_for(self.bystander.recv(), PROMPT_SECONDS)) != {
            "type": "pong"
        }:
            pass
        assert loop.time() - started < PROMPT_SECONDS, "the bystander's pong was late"
        await self.log.catch_up(self.http)
        text = self.log.new_text()
        if check_log:
            assert "Traceback" not in text, text[-3000:]
            assert " ERROR " not in text and "ERROR:" not in text, text[-3000:]


async def start_target(config_dir: Path, ws_protocol: str) -> AsyncIterator[Target]:
    config = config_dir / "netrun_ws.yaml"
    config.write_text(json.dumps(server_config(ws_protocol)))  # JSON is YAML
    async with run_cli(config, env={"PYTHONUNBUFFERED": "1"}) as server:
        async with (
            connect(f"ws://{server.addr}/ws?user_id={BYSTANDER_USER}") as bystander,
            httpx.AsyncClient(base_url=f"http://{server.addr}") as http,
        ):
            assert json.loads(await asyncio.wait_for(bystander.recv(), 5))["type"] == "connect"
            target = Target(server, bystander, LogWatch(server), http, ws_protocol)
            yield target
            await target.assert_unharmed()


# Every case runs against a server of each websocket protocol (server.ws_protocol).
@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["netrun", "uvicorn"])
async def target(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> AsyncIterator[Target]:
    async for running in start_target(tmp_path_factory.mktemp("bad-input"), request.param):
        yield running


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["netrun", "uvicorn"])
async def utf8_target(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> AsyncIterator[Target]:
    """A server of its own: its log is checked separately for uvicorn's invalid UTF-8 line."""
    async for running in start_target(tmp_path_factory.mktemp("bad-utf8"), request.param):
        yield running


@pytest.fixture(scope="module")
def schema() -> Schema:
    app = create_app(server_config())
    return Schema(app.state.host.registry.json_schema())


# ---------------------------------------------------------------------- running text cases


async def run_case(target: Target, case: Case) -> None:
    probe = await target.open_probe()
    replies = await probe.exchange(case.frame)
    if case.expect == VALID:
        assert case.message is not None
        expected = probe.expected_for_valid(case.message)
    else:
        expected = [error(case.expect)]
    assert len(replies) == len(expected), (case.frame[:300], replies)
    for reply, wanted in zip(replies, expected, strict=True):
        assert matches(reply, wanted), (case.frame[:300], reply, wanted)
        if reply.get("type") == "error":
            check_error_shape(reply)
            if case.secret is not None:
                assert case.secret not in json.dumps(reply), reply
    await target.assert_unharmed()


_FUZZ = settings(
    deadline=None,
    derandomize=True,  # the same cases on every run and in CI; raise max_examples to explore
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def fuzz(examples: int) -> settings:
    return settings(_FUZZ, max_examples=examples)


@st.composite
def valid_cases(draw: st.DrawFn, schema: Schema) -> Case:
    message = draw(schema.messages())
    return Case(dumps(message, draw(st.booleans())), VALID, message)


@st.composite
def unknown_type_cases(draw: st.DrawFn, schema: Schema) -> Case:
    message = draw(schema.messages())
    near_misses = st.sampled_from(schema.tags).flatmap(
        lambda tag: st.sampled_from(
            [tag.upper(), f" {tag}", f"{tag} ", f"{tag}\u200b", tag[:-1], f"{tag}s", tag + "\x00"]
        )
    )
    message["type"] = draw(
        (st.text(max_size=30) | near_misses).filter(lambda t: t not in schema.tags)
    )
    return Case(dumps(message, draw(st.booleans())), ErrorCode.UNKNOWN_TYPE)


@st.composite
def extra_field_cases(draw: st.DrawFn, schema: Schema) -> Case:
    message = draw(schema.messages())
    taken = {*schema.properties(message["type"]), "body"}  # "body" aliases notification.message
    name = draw(st.text(min_size=1, max_size=30).filter(lambda key: key not in taken))
    message[name] = draw(json_values())
    return Case(dumps(message), ErrorCode.VALIDATION_FAILED)


@st.composite
def missing_field_cases(draw: st.DrawFn, schema: Schema) -> Case:
    with_required = [tag for tag in schema.tags if schema.required(tag)]
    message = draw(st.sampled_from(with_required).flatmap(lambda tag: schema.message(tag)))
    if draw(st.integers(0, 4)) == 0:
        del message["type"]
        return Case(dumps(message), ErrorCode.INVALID_MESSAGE)
    del message[draw(st.sampled_from(schema.required(message["type"])))]
    return Case(dumps(message), ErrorCode.VALIDATION_FAILED)


@st.composite
def wrong_type_cases(draw: st.DrawFn, schema: Schema) -> Case:
    message = draw(schema.messages())
    tag = message["type"]
    candidates = {
        name: schema.kinds(prop)
        for name, prop in schema.properties(tag).items()
        if name != "type" and "any" not in schema.kinds(prop)
    }
    if not candidates:  # types whose only fields accept any JSON: retarget a field-rich one
        tag = "user_message"
        message = draw(schema.message(tag))
        candidates = {n: schema.kinds(p) for n, p in schema.properties(tag).items() if n != "type"}
    name = draw(st.sampled_from(sorted(candidates)))
    kinds = candidates[name]
    wrong: list[st.SearchStrategy[Any]] = []
    if "object" not in kinds:
        wrong.append(
            st.dictionaries(st.text(max_size=5), json_values(), max_size=2).map(with_canary)
        )
    if "array" not in kinds:
        wrong.append(st.lists(json_values(), max_size=3).map(lambda items: [*items, CANARY]))
    if kinds <= {"string", "null"}:  # lax mode turns no number or boolean into a str
        wrong.append(st.integers() | st.booleans())
    if "string" not in kinds:
        wrong.append(st.just(CANARY))
    message[name] = draw(st.one_of(wrong))
    return Case(dumps(message), ErrorCode.VALIDATION_FAILED, secret=CANARY)


def _string_fields(schema: Schema, tag: str) -> list[str]:
    return [
        name
        for name, prop in schema.properties(tag).items()
        if name != "type" and schema.kinds(prop) <= {"string", "null"}
    ]


@st.composite
def huge_number_cases(draw: st.DrawFn, schema: Schema) -> Case:
    digits = draw(st.integers(300, MAX_NUMBER_DIGITS) | st.integers(MAX_NUMBER_DIGITS + 1, 60000))
    number = draw(
        st.sampled_from(["1e400", "-1e400", "1E+99999", "-0.0e-99999"])
        | st.builds(lambda sign: f"{sign}1{'0' * (digits - 1)}", st.sampled_from(["", "-"]))
    )
    where = draw(st.sampled_from(["top", "type", "string_field", "extra", "int_field"]))
    if where == "top":
        frame, expect = number, ErrorCode.INVALID_MESSAGE
    else:
        if where == "string_field":
            tag = draw(st.sampled_from([t for t in schema.tags if _string_fields(schema, t)]))
            message = draw(schema.message(tag))
            message[draw(st.sampled_from(_string_fields(schema, tag)))] = "@NUMBER@"
            expect = ErrorCode.VALIDATION_FAILED
        elif where == "int_field":
            message = {"type": "disconnect", "code": "@NUMBER@"}
            # An integer of any length is an int; 1e400 is infinite; -0.0e-99999 is 0.0.
            integral = "e" not in number.lower() or number.lower() == "-0.0e-99999"
            expect = VALID if integral else ErrorCode.VALIDATION_FAILED
        elif where == "type":
            message = {"type": "@NUMBER@"}
            expect = ErrorCode.INVALID_MESSAGE
        else:
            message = draw(schema.messages())
            message["huge"] = "@NUMBER@"
            expect = ErrorCode.VALIDATION_FAILED
        frame = dumps(message).replace('"@NUMBER@"', number)
    if number.lstrip("-").isdigit() and digits > MAX_NUMBER_DIGITS:
        expect = ErrorCode.INVALID_JSON  # beyond the parser's limit: "number out of range"
    parsed = {"type": "disconnect", "code": 0} if expect == VALID else None
    return Case(frame, expect, parsed)


@st.composite
def deep_nesting_cases(draw: st.DrawFn, schema: Schema) -> Case:
    deep = draw(st.booleans())
    depth = draw(st.integers(DEEP_DEPTH, 20000) if deep else st.integers(1, SHALLOW_DEPTH))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    depth = min(depth, MAX_MESSAGE_BYTES // 8)  # objects cost 6 bytes a level
    nested = opener * depth + ("1" if opener != "[" else "") + closer * depth
    where = draw(st.sampled_from(["top", "error.details", "session_updated.data"]))
    if where == "top":
        frame = nested
        expect = ErrorCode.INVALID_JSON if deep else ErrorCode.INVALID_MESSAGE
        return Case(frame, expect)
    if where == "error.details":
        message: dict[str, Any] = {"type": "error", "error": "x", "details": "@NESTED@"}
    else:
        message = {"type": "session_updated", "data": {"k": "@NESTED@"}}
    frame = dumps(message).replace('"@NESTED@"', nested)
    return Case(frame, ErrorCode.INVALID_JSON if deep else VALID, message)


EDGE_CHARACTERS = [
    "\x00",
    "\x1f",
    "\x7f",
    "\u0085",
    "\u00ad",
    "\u200b",
    "\u200d",
    "\u202e",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\ufffd",
    "\uffff",
    "\U0001f600",
    "\U0001f469\u200d\U0001f4bb",
    "\U0010ffff",
    "e\u0301\u0301\u0301",
    "\u0130",
    "\ufdd0",
    "\U000e0001",
]


def edge_text(min_size: int = 0) -> st.SearchStrategy[str]:
    pieces = st.lists(st.sampled_from(EDGE_CHARACTERS) | st.text(max_size=4), max_size=12)
    return pieces.map("".join).filter(lambda text: len(text) >= min_size)


@st.composite
def unicode_cases(draw: st.DrawFn, schema: Schema) -> Case:
    text = draw(edge_text(min_size=1))
    ascii_only = draw(st.booleans())
    where = draw(st.sampled_from(["say.text", "user_message", "type", "room", "lone_surrogate"]))
    if where == "say.text":
        message = {"type": "say", "room": "unicode", "text": text[:4000]}
        return Case(dumps(message, ascii_only), VALID, message)
    if where == "user_message":
        message = {"type": "user_message", "user_id": text, "username": text, "content": text}
        return Case(dumps(message, ascii_only), VALID, message)
    if where == "type":
        expect = ErrorCode.UNKNOWN_TYPE
        if text in schema.tags:
            expect = ErrorCode.VALIDATION_FAILED if schema.required(text) else VALID
        return Case(dumps({"type": text}, ascii_only), expect, {"type": text})
    if where == "room":
        room = "r" + text  # never matches ^[A-Za-z0-9_.:-]+$ once a non-ASCII character is in
        if room.isascii() and all(c.isalnum() or c in "_.:-" for c in room) and len(room) <= 64:
            room += "\u00e9"
        return Case(dumps({"type": "join", "room": room}, ascii_only), ErrorCode.VALIDATION_FAILED)
    # A lone surrogate escape: the parser refuses it (JSON text must be valid Unicode).
    surrogate = draw(st.integers(0xD800, 0xDFFF))
    frame = dumps({"type": "user_message", "user_id": "u", "username": "u", "content": "@S@"})
    return Case(frame.replace('"@S@"', f'"a\\u{surrogate:04x}b"'), ErrorCode.INVALID_JSON)


@st.composite
def long_string_cases(draw: st.DrawFn, schema: Schema) -> Case:
    filler = draw(st.sampled_from(["a", "Z", "0", " ", "é"]))
    budget = (MAX_MESSAGE_BYTES - 200) // len(filler.encode())
    field_name, limit = draw(
        st.sampled_from([("say.text", 4000), ("direct.to", 128), ("direct.text", 4000)])
        | st.just(("user_message.content", None))
    )
    if limit is None:
        size = draw(st.integers(1000, budget))
        message: dict[str, Any] = {
            "type": "user_message",
            "user_id": "u",
            "username": "u",
            "content": filler * size,
        }
        return Case(dumps(message, ascii_only=False), VALID, message)
    over = draw(st.booleans())
    size = draw(st.integers(limit + 1, budget) if over else st.just(limit))
    tag, name = field_name.split(".")
    message = {"type": tag, "room": "long", "to": "nobody-7f3a", "text": "t"}
    message = {key: value for key, value in message.items() if key in schema.properties(tag)}
    message[name] = filler * size
    if over:
        return Case(
            dumps(message, ascii_only=False), ErrorCode.VALIDATION_FAILED, secret=filler * 50
        )
    return Case(dumps(message, ascii_only=False), VALID, message)


@st.composite
def broken_json_cases(draw: st.DrawFn, schema: Schema) -> Case:
    kind = draw(st.sampled_from(["truncated", "garbage", "not_object", "type_not_string"]))
    if kind == "truncated":  # every proper prefix of an object's text is not JSON
        text = dumps(draw(schema.messages()))
        return Case(text[: draw(st.integers(0, len(text) - 1))], ErrorCode.INVALID_JSON)
    if kind == "garbage":
        text = draw(st.text(min_size=1, max_size=50).filter(_not_json))
        return Case(text, ErrorCode.INVALID_JSON)
    if kind == "not_object":
        value = draw(json_values().filter(lambda v: not isinstance(v, dict)))
        return Case(dumps(value), ErrorCode.INVALID_MESSAGE)
    message = draw(schema.messages())
    message["type"] = draw(
        st.none() | st.booleans() | st.integers() | st.lists(st.text(max_size=3), max_size=2)
    )
    return Case(dumps(message), ErrorCode.INVALID_MESSAGE)


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


# ---------------------------------------------------------------------- hypothesis tests


@fuzz(60)
@given(data=st.data())
async def test_valid_instances_of_the_schema_are_accepted(
    target: Target, schema: Schema, data: st.DataObject
) -> None:
    await run_case(target, data.draw(valid_cases(schema)))


@fuzz(30)
@given(data=st.data())
async def test_unknown_types_get_unknown_type(
    target: Target, schema: Schema, data: st.DataObject
) -> None:
    await run_case(target, data.draw(unknown_type_cases(schema)))


@fuzz(30)
@given(data=st.data())
async def test_extra_fields_get_validation_failed(
    target: Target, schema: Schema, data: st.DataObject
) -> None:
    await run_case(target, data.draw(extra_field_cases(schema)))


@fuzz(25)
@given(data=st.data())
async def test_missing_fields(target: Target, schema: Schema, data: st.DataObject) -> None:
    await run_case(target, data.draw(missing_field_cases(schema)))


@fuzz(40)
@given(data=st.data())
async def test_wrong_types_get_validation_failed_without_echo(
    target: Target, schema: Schema, data: st.DataObject
) -> None:
    await run_case(target, data.draw(wrong_type_cases(schema)))


@fuzz(30)
@given(data=st.data())
async def test_huge_numbers(target: Target, schema: Schema, data: st.DataObject) -> None:
    await run_case(target, data.draw(huge_number_cases(schema)))


@fuzz(20)
@given(data=st.data())
async def test_deep_nesting(target: Target, schema: Schema, data: st.DataObject) -> None:
    await run_case(target, data.draw(deep_nesting_cases(schema)))


@fuzz(40)
@given(data=st.data())
async def test_unicode_edge_cases(target: Target, schema: Schema, data: st.DataObject) -> None:
    probe = await target.open_probe()
    if "unicode" not in probe.rooms:
        await run_case(
            target,
            Case(
                dumps({"type": "join", "room": "unicode"}),
                VALID,
                {"type": "join", "room": "unicode"},
            ),
        )
    await run_case(target, data.draw(unicode_cases(schema)))


@fuzz(20)
@given(data=st.data())
async def test_long_strings(target: Target, schema: Schema, data: st.DataObject) -> None:
    probe = await target.open_probe()
    if "long" not in probe.rooms:
        join = {"type": "join", "room": "long"}
        await run_case(target, Case(dumps(join), VALID, join))
    await run_case(target, data.draw(long_string_cases(schema)))


@fuzz(30)
@given(data=st.data())
async def test_broken_json(target: Target, schema: Schema, data: st.DataObject) -> None:
    await run_case(target, data.draw(broken_json_cases(schema)))


# ---------------------------------------------------------------------- JSON the docs call invalid


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(frame)
        for frame in (
            "NaN",
            "-Infinity",
            '{"type": "connect", "heartbeat_interval": NaN}',
            '{"type": "connect", "heartbeat_interval": Infinity}',
            '{"type": "ping", "message_id": NaN}',
            '{"type": "error", "error": "x", "details": [Infinity]}',
        )
    ],
)
async def test_non_json_number_tokens_get_invalid_json(target: Target, frame: str) -> None:
    await run_case(target, Case(frame, ErrorCode.INVALID_JSON))


@pytest.mark.parametrize(
    ("frame", "expect"),
    [
        ("", ErrorCode.INVALID_JSON),
        (" ", ErrorCode.INVALID_JSON),
        ("\ufeff{}", ErrorCode.INVALID_JSON),
        ('{"type": "ping"}{"type": "ping"}', ErrorCode.INVALID_JSON),
        ("{'type': 'ping'}", ErrorCode.INVALID_JSON),
        ('{"type": "ping",}', ErrorCode.INVALID_JSON),
        ('{"type": "ping"} // comment', ErrorCode.INVALID_JSON),
        ('{"type": "ping", "message_id": "\\x41"}', ErrorCode.INVALID_JSON),
        ('{"type": "ping", "message_id": "tab\there"}', ErrorCode.INVALID_JSON),
        ("[]", ErrorCode.INVALID_MESSAGE),
        ('"ping"', ErrorCode.INVALID_MESSAGE),
        ("{}", ErrorCode.INVALID_MESSAGE),
        ('{"type": {"type": "ping"}}', ErrorCode.INVALID_MESSAGE),
    ],
)
async def test_hand_written_text_frames(target: Target, frame: str, expect: str) -> None:
    await run_case(target, Case(frame, expect))


async def test_ten_invalid_frames_in_a_row_close_with_4000(target: Target) -> None:
    ws = await target.raw()
    for index in range(10):
        await ws.send_text(f"not json {index}")
    codes = [json.loads(await ws.read_text())["code"] for _ in range(10)]
    assert codes == [ErrorCode.INVALID_JSON] * 10
    assert (await ws.expect_close()).code == CloseCode.TOO_MANY_INVALID_MESSAGES
    await ws.aclose()
    await target.assert_unharmed()


# ---------------------------------------------------------------------- hand-built frames


async def closes_counted(target: Target, code: int) -> float:
    """How many connections the server says it closed with ``code`` (its prometheus sink)."""
    exposition = (await target.http.get("/metrics")).text
    match = re.search(
        rf'^netrun_ws_connections_closed_total{{code="{code}"}} (\S+)$', exposition, re.MULTILINE
    )
    return 0.0 if match is None else float(match.group(1))


async def expect_closed(target: Target, frames: list[bytes], code: int) -> None:
    uvicorn = target.ws_protocol == "uvicorn"
    counted = await closes_counted(target, code) if uvicorn else 0.0
    ws = await target.raw()
    # Read while sending: when the server closes with our later frames still unread, its kernel
    # answers them with a reset, which would discard a close frame we had not read yet.
    closing = asyncio.ensure_future(ws.expect_close())
    try:
        for frame in frames:
            await ws.send_raw(frame)
    except ConnectionError:
        pass  # the server may close before it has read everything we sent
    closed = await closing
    # uvicorn's own protocol closes at once, without netrun-ws's lingering close
    # (docs/protocol.md): frames we were still sending can reach a closed socket, and the reset
    # can overtake the close frame (1006 here). The server's own count says how it closed.
    if not (uvicorn and closed.code == 1006 and len(frames) > 1):
        assert closed.code == code, closed
    if uvicorn:

        async def counted_once() -> bool:
            return await closes_counted(target, code) == counted + 1

        await eventually(counted_once, what=f"the server's count of closes with {code}")
    await ws.aclose()


def text(payload: bytes, **options: Any) -> bytes:
    return encode_frame(Opcode.TEXT, payload, **options)


INVALID_UTF8 = {
    "lone continuation byte": b'{"type": "ping", "message_id": "\x80"}',
    "0xff": b'"\xff"',
    "overlong slash": b'"\xc0\xaf"',
    "encoded surrogate": b'"\xed\xa0\x80"',
    "truncated sequence": b'"\xe2\x82',
    "above U+10FFFF": b'"\xf4\x90\x80\x80"',
    "five-byte form": b'"\xf8\x88\x80\x80\x80"',
}


@pytest.mark.parametrize("payload", list(INVALID_UTF8.values()), ids=list(INVALID_UTF8))
async def test_invalid_utf8_in_a_text_frame_closes_1007(
    utf8_target: Target, payload: bytes
) -> None:
    await expect_closed(utf8_target, [text(payload)], INVALID_PAYLOAD)
    await utf8_target.assert_unharmed(check_log=False)  # the log is checked below


async def test_invalid_utf8_split_across_fragments_closes_1007(utf8_target: Target) -> None:
    frames = [text(b'"\xe2\x82', fin=False), encode_frame(Opcode.CONTINUATION, b'\xff"')]
    await expect_closed(utf8_target, frames, INVALID_PAYLOAD)
    await utf8_target.assert_unharmed(check_log=False)


async def test_invalid_utf8_leaves_no_traceback_in_the_log(utf8_target: Target) -> None:
    utf8_target.log.new_text()
    await expect_closed(utf8_target, [text(b'"\xff"')], INVALID_PAYLOAD)
    await utf8_target.assert_unharmed(check_log=True)


async def test_valid_utf8_split_mid_character_across_fragments_is_reassembled(
    target: Target,
) -> None:
    ws = await target.raw()
    message = '{"type": "say", "room": "nowhere", "text": "\u20ac"}'.encode()
    cut = message.index(b"\xe2") + 1
    await ws.send_raw(text(message[:cut], fin=False))
    await ws.send_raw(encode_frame(Opcode.CONTINUATION, message[cut:]))
    reply = json.loads(await ws.read_text())
    assert reply["code"] == ErrorCode.FORBIDDEN  # parsed fine; not in that room
    await ws.aclose()
    await target.assert_unharmed()


BINARY = {
    "json bytes": [encode_frame(Opcode.BINARY, b'{"type": "ping"}')],
    "empty": [encode_frame(Opcode.BINARY, b"")],
    "not utf-8": [encode_frame(Opcode.BINARY, b"\x00\xff\xfe")],
    "random 4 KiB": [encode_frame(Opcode.BINARY, os.urandom(4096))],
    "fragmented": [
        encode_frame(Opcode.BINARY, b'{"type":', fin=False),
        encode_frame(Opcode.CONTINUATION, b' "ping"}'),
    ],
    "exactly the size limit": [encode_frame(Opcode.BINARY, b"b" * MAX_MESSAGE_BYTES)],
}


@pytest.mark.parametrize("frames", list(BINARY.values()), ids=list(BINARY))
async def test_binary_frames_get_binary_not_supported(target: Target, frames: list[bytes]) -> None:
    ws = await target.raw()
    for frame in frames:
        await ws.send_raw(frame)
    reply = json.loads(await ws.read_text())
    check_error_shape(reply)
    assert reply["code"] == ErrorCode.BINARY_NOT_SUPPORTED and reply["details"] is None
    await ws.send_text('{"type": "ping"}')  # the connection stays open
    assert json.loads(await ws.read_text()) == {"type": "pong"}
    await ws.aclose()
    await target.assert_unharmed()


def _exactly(size: int) -> bytes:
    """A valid user_message of exactly ``size`` bytes."""
    head = b'{"type": "user_message", "user_id": "u", "username": "u", "content": "'
    return head + b"c" * (size - len(head) - 2) + b'"}'


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param([text(_exactly(MAX_MESSAGE_BYTES))], id="whole"),
        pytest.param(
            [
                text(_exactly(MAX_MESSAGE_BYTES)[:40000], fin=False),
                encode_frame(Opcode.CONTINUATION, _exactly(MAX_MESSAGE_BYTES)[40000:]),
            ],
            id="fragmented",
        ),
    ],
)
async def test_a_message_of_exactly_max_message_bytes_is_accepted(
    target: Target, frames: list[bytes]
) -> None:
    ws = await target.raw()
    for frame in frames:
        await ws.send_raw(frame)
    await ws.send_text('{"type": "ping"}')
    assert json.loads(await ws.read_text()) == {"type": "pong"}  # no error came first
    await ws.aclose()
    await target.assert_unharmed()


def _fragments(opcode: int, total: int, piece: int) -> list[bytes]:
    count = -(-total // piece)
    return [
        encode_frame(opcode if i == 0 else Opcode.CONTINUATION, b"a" * piece, fin=i == count - 1)
        for i in range(count)
    ]


OVERSIZE = {
    "text one byte over": [text(b"a" * (MAX_MESSAGE_BYTES + 1))],
    "binary one byte over": [encode_frame(Opcode.BINARY, b"a" * (MAX_MESSAGE_BYTES + 1))],
    "text 1 MiB": [text(b"a" * (1 << 20))],
    "length header of 2**40, no payload": [text(b"", length=1 << 40)],
    "text in two fragments": _fragments(Opcode.TEXT, 80000, 40000),
    "text in 200 small fragments": _fragments(Opcode.TEXT, 200 * 400, 400),
    "binary in two fragments": _fragments(Opcode.BINARY, 80000, 40000),
    "fragments one byte over": [
        text(b"a" * MAX_MESSAGE_BYTES, fin=False),
        encode_frame(Opcode.CONTINUATION, b"a"),
    ],
}


@pytest.mark.parametrize("frames", list(OVERSIZE.values()), ids=list(OVERSIZE))
async def test_oversize_messages_close_1009(target: Target, frames: list[bytes]) -> None:
    await expect_closed(target, frames, CloseCode.MESSAGE_TOO_BIG)
    await target.assert_unharmed()


PROTOCOL_ERRORS: dict[str, list[bytes]] = {
    "ping of 126 bytes": [encode_frame(Opcode.PING, b"p" * 126)],
    "ping of 64 KiB": [encode_frame(Opcode.PING, b"p" * 65535)],
    "pong of 126 bytes": [encode_frame(Opcode.PONG, b"p" * 126)],
    "close of 126 bytes": [encode_frame(Opcode.CLOSE, close_payload(1000, "r" * 124))],
    "fragmented ping": [encode_frame(Opcode.PING, b"p", fin=False)],
    "fragmented close": [encode_frame(Opcode.CLOSE, close_payload(1000), fin=False)],
    "unmasked text": [text(b'{"type": "ping"}', mask=False)],
    "unmasked binary": [encode_frame(Opcode.BINARY, b"x", mask=False)],
    "unmasked ping": [encode_frame(Opcode.PING, b"x", mask=False)],
    "unmasked close": [encode_frame(Opcode.CLOSE, close_payload(1000), mask=False)],
    **{f"reserved opcode {op:#x}": [encode_frame(op, b"x")] for op in (3, 4, 5, 6, 7)},
    **{f"reserved opcode {op:#x}": [encode_frame(op, b"")] for op in (0xB, 0xC, 0xD, 0xE, 0xF)},
    **{f"text with RSV {rsv:03b}": [text(b'{"type": "ping"}', rsv=rsv)] for rsv in range(1, 8)},
    "ping with RSV1": [encode_frame(Opcode.PING, b"", rsv=4)],
    "continuation with RSV2": [
        text(b'{"type":', fin=False),
        encode_frame(Opcode.CONTINUATION, b' "ping"}', rsv=2),
    ],
    "continuation without a start": [encode_frame(Opcode.CONTINUATION, b"x")],
    "text inside a fragmented text": [text(b"[", fin=False), text(b"1]")],
    "binary inside a fragmented text": [
        text(b"[", fin=False),
        encode_frame(Opcode.BINARY, b"1]"),
    ],
    "close with a one-byte payload": [encode_frame(Opcode.CLOSE, b"\x03")],
    **{
        f"close code {code}": [encode_frame(Opcode.CLOSE, close_payload(code))]
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535)
    },
}


@pytest.mark.parametrize("frames", list(PROTOCOL_ERRORS.values()), ids=list(PROTOCOL_ERRORS))
async def test_protocol_violations_close_1002(target: Target, frames: list[bytes]) -> None:
    await expect_closed(target, frames, PROTOCOL_ERROR)
    await target.assert_unharmed()


async def test_close_reason_with_invalid_utf8_closes_1007(target: Target) -> None:
    frame = encode_frame(Opcode.CLOSE, close_payload(1000) + b"\xff\xfe")
    await expect_closed(target, [frame], INVALID_PAYLOAD)
    await target.assert_unharmed()


async def test_control_frames_inside_a_fragmented_message_are_answered(target: Target) -> None:
    ws = await target.raw()
    await ws.send_raw(text(b'{"type":', fin=False))
    await ws.send_raw(encode_frame(Opcode.PING, b"hello"))
    await ws.send_raw(encode_frame(Opcode.CONTINUATION, b' "ping"}'))
    frames = [await ws.read_frame(), await ws.read_frame()]
    assert (frames[0].opcode, frames[0].payload) == (Opcode.PONG, b"hello")
    assert (frames[1].opcode, json.loads(frames[1].payload)) == (Opcode.TEXT, {"type": "pong"})
    await ws.aclose()
    await target.assert_unharmed()
