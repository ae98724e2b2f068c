"""Protocol models, the message registry and its error classification."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, create_model

import netrun_ws.protocol as protocol
from netrun_ws.codes import ErrorCode
from netrun_ws.protocol import (
    ConnectionInfo,
    ConnectionState,
    ConnectMessage,
    ErrorMessage,
    MessageRegistry,
    MessageType,
    NotificationMessage,
    PingMessage,
    PongMessage,
    PresenceUpdateMessage,
    ProtocolError,
    TypingIndicatorMessage,
    UserMessage,
    WebSocketMessage,
    default_registry,
    parse_message,
)

WIRE_TYPES = [
    "ping",
    "pong",
    "connect",
    "disconnect",
    "ack",
    "error",
    "user_message",
    "user_typing",
    "user_stopped_typing",
    "user_joined",
    "user_left",
    "presence_update",
    "session_updated",
    "notification",
    "heartbeat",
    "heartbeat_ack",
]

#: The smallest valid message of every wire type.
MINIMAL: dict[str, dict[str, Any]] = {
    "ping": {},
    "pong": {},
    "connect": {},
    "disconnect": {},
    "ack": {},
    "error": {"error": "boom"},
    "user_message": {"user_id": "u1", "username": "alice", "content": "hi"},
    "user_typing": {"user_id": "u1", "username": "alice"},
    "user_stopped_typing": {"user_id": "u1", "username": "alice"},
    "user_joined": {"user_id": "u1"},
    "user_left": {"user_id": "u1"},
    "presence_update": {"user_id": "u1", "status": "online"},
    "session_updated": {},
    "notification": {"title": "t", "message": "m"},
    "heartbeat": {},
    "heartbeat_ack": {},
}


class ChatSend(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["chat.send"] = "chat.send"
    room: str
    text: str = Field(max_length=10)


def _details(error: ProtocolError) -> dict[str, Any]:
    assert isinstance(error.details, dict)
    return error.details


def _error(data: Any, registry: MessageRegistry | None = None) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        (registry if registry is not None else default_registry()).parse(data)
    return caught.value


# -- enums and models -------------------------------------------------------------------------


def test_message_type_has_exactly_the_wire_values() -> None:
    assert [member.value for member in MessageType] == WIRE_TYPES
    assert MessageType("user_message") is MessageType.USER_MESSAGE
    assert json.dumps(MessageType.PING) == '"ping"'  # a str enum: serialises as its value


def test_connection_state_values() -> None:
    assert [member.value for member in ConnectionState] == [
        "connecting",
        "connected",
        "disconnecting",
        "disconnected",
        "reconnecting",
        "failed",
    ]


def test_timestamp_defaults_to_now_in_utc() -> None:
    before = datetime.now(UTC)
    message = PingMessage()
    after = datetime.now(UTC)
    assert message.timestamp.tzinfo is not None
    assert message.timestamp.utcoffset() == timedelta(0)
    assert before <= message.timestamp <= after
    assert message.message_id is None


def test_base_message_accepts_any_message_type() -> None:
    message = WebSocketMessage(type=MessageType.NOTIFICATION, message_id="m1")
    assert message.type is MessageType.NOTIFICATION
    with pytest.raises(ValueError, match="type"):
        WebSocketMessage(type="nope")


def test_models_serialise_the_wire_type() -> None:
    message = UserMessage(user_id="u1", username="alice", content="hi", message_id="m1")
    wire = json.loads(message.model_dump_json())
    assert wire["type"] == "user_message" and wire["message_id"] == "m1"
    assert parse_message(message.model_dump_json()) == message


def test_error_message_fields() -> None:
    message = ErrorMessage(error="bad", code=ErrorCode.FORBIDDEN, details={"room": "x"})
    assert json.loads(message.model_dump_json())["code"] == "forbidden"
    assert ErrorMessage(error="bad").code is None


def test_notification_priority_and_body_alias() -> None:
    by_body = parse_message({"type": "notification", "title": "t", "body": "b"})
    assert isinstance(by_body, NotificationMessage)
    assert by_body.message == "b" and by_body.priority == "normal"
    built = NotificationMessage(title="t", message="m", priority="high")
    assert built.priority == "high"
    error = _error({"type": "notification", "title": "t", "message": "m", "priority": "urgent"})
    assert error.code == ErrorCode.VALIDATION_FAILED


def test_typing_indicator_takes_both_types() -> None:
    for wire in ("user_typing", "user_stopped_typing"):
        message = parse_message({"type": wire, "user_id": "u", "username": "n"})
        assert isinstance(message, TypingIndicatorMessage) and message.type == wire
    built = TypingIndicatorMessage(user_id="u", username="n")
    assert built.type is MessageType.USER_TYPING


def test_presence_status_is_restricted() -> None:
    assert isinstance(
        parse_message(MINIMAL["presence_update"] | {"type": "presence_update"}),
        PresenceUpdateMessage,
    )
    error = _error({"type": "presence_update", "user_id": "u", "status": "sleeping"})
    assert error.code == ErrorCode.VALIDATION_FAILED


def test_connection_info_defaults() -> None:
    info = ConnectionInfo(connection_id="c1", user_id="u1")
    assert info.state is ConnectionState.CONNECTED
    assert info.session_id is None and info.metadata == {}
    assert info.connected_at.tzinfo is not None


def test_connect_message_carries_the_reconnect_policy() -> None:
    policy: dict[str, JsonValue] = {"strategy": "exponential", "initial_delay": 1.0}
    message = ConnectMessage(connection_id="c1", user_id="u1", reconnect=policy)
    assert parse_message(message.model_dump_json()).reconnect == policy  # type: ignore[attr-defined]


# -- parse_message: every wire type ------------------------------------------------------------


@pytest.mark.parametrize("wire_type", WIRE_TYPES)
def test_every_wire_type_parses_to_its_model(wire_type: str) -> None:
    text = json.dumps({"type": wire_type, **MINIMAL[wire_type]})
    for data in (text, text.encode(), bytearray(text.encode()), json.loads(text)):
        message = parse_message(data)
        assert isinstance(message, WebSocketMessage)
        assert message.type == wire_type
        assert default_registry().types()[wire_type] is type(message)


@pytest.mark.parametrize("wire_type", WIRE_TYPES)
def test_built_in_models_forbid_unknown_fields(wire_type: str) -> None:
    error = _error({"type": wire_type, **MINIMAL[wire_type], "surprise": 1})
    assert error.code == ErrorCode.VALIDATION_FAILED
    assert _details(error)["errors"][-1]["loc"] == ["surprise"]


def test_dict_with_an_enum_type_parses() -> None:
    assert isinstance(parse_message({"type": MessageType.PONG}), PongMessage)


# -- error classification ------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["{bad", "", "{'type': 'ping'}", b"\xff\xfe{", '{"type": "ping"'])
def test_invalid_json(raw: str | bytes) -> None:
    error = _error(raw)
    assert error.code == ErrorCode.INVALID_JSON
    assert error.error == "message is not valid JSON"
    assert isinstance(error.details, dict) and isinstance(error.details["reason"], str)


@pytest.mark.parametrize(
    ("raw", "received"),
    [
        ("[1, 2]", "array"),
        ('"ping"', "string"),
        ("42", "number"),
        ("null", "null"),
        ("true", "boolean"),
    ],
)
def test_json_that_is_not_an_object(raw: str, received: str) -> None:
    error = _error(raw)
    assert error.code == ErrorCode.INVALID_MESSAGE
    assert error.details == {"received": received}


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"content": "hi"}, "missing"),
        ({"type": None}, "missing"),
        ({"type": 5}, "a JSON number, not a string"),
        ({"type": ["ping"]}, "a JSON array, not a string"),
        ({"type": {"name": "ping"}}, "a JSON object, not a string"),
        ({"type": True}, "a JSON boolean, not a string"),
    ],
)
def test_missing_or_non_string_type(message: dict[str, Any], problem: str) -> None:
    for data in (message, json.dumps(message)):
        error = _error(data)
        assert error.code == ErrorCode.INVALID_MESSAGE
        assert problem in error.error


@pytest.mark.parametrize("data", [42, None, ["ping"], 1.5])
def test_unsupported_python_input(data: Any) -> None:
    error = _error(data)
    assert error.code == ErrorCode.INVALID_MESSAGE
    assert error.details == {"received": type(data).__name__}


def test_unknown_type_lists_the_known_types() -> None:
    error = _error('{"type": "launch_missiles"}')
    assert error.code == ErrorCode.UNKNOWN_TYPE
    assert error.error == "unknown message type 'launch_missiles'"
    assert error.details == {"type": "launch_missiles", "known_types": sorted(WIRE_TYPES)}


def test_unknown_type_echo_is_truncated() -> None:
    error = _error({"type": "x" * 5000})
    assert error.code == ErrorCode.UNKNOWN_TYPE
    assert len(json.dumps(error.details)) < 1000
    assert len(error.error) < 200


def test_validation_errors_are_listed_without_input_values() -> None:
    secret = "hunter2-SECRET-" * 50
    raw = json.dumps(
        {"type": "user_message", "user_id": secret, "username": 7, "content": [secret]}
    )
    error = _error(raw)
    assert error.code == ErrorCode.VALIDATION_FAILED
    assert error.error == "invalid 'user_message' message"
    assert error.details == {
        "type": "user_message",
        "error_count": 2,
        "errors": [
            {"loc": ["username"], "msg": "Input should be a valid string", "type": "string_type"},
            {"loc": ["content"], "msg": "Input should be a valid string", "type": "string_type"},
        ],
    }
    assert "SECRET" not in json.dumps(error.details) and "SECRET" not in str(error)


def test_error_context_is_json_safe() -> None:
    registry = MessageRegistry(ChatSend)
    error = _error({"type": "chat.send", "room": "r", "text": "far too long a text"}, registry)
    assert error.code == ErrorCode.VALIDATION_FAILED
    (entry,) = _details(error)["errors"]
    assert entry["type"] == "string_too_long" and entry["ctx"] == {"max_length": 10}
    json.dumps(error.details)


def test_error_list_is_capped() -> None:
    fields: dict[str, Any] = {f"f{index}": (str, ...) for index in range(50)}
    tag: Any = Literal["wide"]
    wide = create_model("Wide", type=(tag, "wide"), **fields)
    error = _error({"type": "wide"}, MessageRegistry(wide))
    assert _details(error)["error_count"] == 50
    assert len(_details(error)["errors"]) == protocol.MAX_REPORTED_ERRORS


def test_protocol_error_is_a_value_error_with_an_error_reply() -> None:
    error = _error("{bad")
    assert isinstance(error, ValueError)
    assert str(error) == error.error
    reply = error.to_message()
    assert isinstance(reply, ErrorMessage)
    wire = json.loads(reply.model_dump_json())
    assert wire["type"] == "error" and wire["code"] == "invalid_json"
    assert wire["details"] == error.details
    assert "invalid_json" in repr(error)


def test_parse_message_never_raises_key_error() -> None:
    for data in ("{}", '{"type": ""}', '{"type": "error"}', "{}" * 3, '{"type": "ping", "x": {}}'):
        with pytest.raises(ProtocolError):
            parse_message(data)


# -- the registry ---------------------------------------------------------------------------------


def test_custom_models_join_the_union() -> None:
    registry = default_registry()
    registry.register(ChatSend)
    message = registry.parse('{"type": "chat.send", "room": "lobby", "text": "hi"}')
    assert isinstance(message, ChatSend) and message.room == "lobby"
    assert isinstance(registry.parse('{"type": "ping"}'), PingMessage)
    assert "chat.send" in registry and len(registry) == len(WIRE_TYPES) + 1


def test_message_types_export_is_what_the_default_registry_holds() -> None:
    assert set(default_registry().types().values()) == set(protocol.MESSAGE_TYPES)
    assert len(protocol.MESSAGE_TYPES) == len(WIRE_TYPES) - 1  # one model for both typing types


def test_default_registry_returns_independent_registries() -> None:
    registry = default_registry()
    registry.register(ChatSend)
    assert "chat.send" not in default_registry()
    assert _error('{"type": "chat.send", "room": "r", "text": "t"}').code == ErrorCode.UNKNOWN_TYPE
    with pytest.raises(ProtocolError):
        parse_message('{"type": "chat.send", "room": "r", "text": "t"}')


def test_register_refuses_a_model_without_a_type_literal() -> None:
    class NoType(BaseModel):
        text: str

    class StrType(BaseModel):
        type: str

    class EmptyType(BaseModel):
        type: Literal[""]

    with pytest.raises(ValueError, match=r"NoType cannot be registered.*Literal"):
        MessageRegistry().register(NoType)
    with pytest.raises(ValueError, match="StrType cannot be registered"):
        MessageRegistry().register(StrType)
    with pytest.raises(ValueError, match="EmptyType cannot be registered"):
        MessageRegistry().register(EmptyType)
    with pytest.raises(TypeError, match="not a pydantic BaseModel"):
        MessageRegistry().register(dict)  # type: ignore[arg-type]


def test_register_refuses_a_taken_type_and_is_atomic() -> None:
    class OtherPing(BaseModel):
        type: Literal["ping"]

    registry = default_registry()
    with pytest.raises(ValueError, match="'ping' is already registered by PingMessage") as caught:
        registry.register(ChatSend, OtherPing)
    assert "OtherPing" in str(caught.value)
    assert "chat.send" not in registry  # nothing from the failed call was kept

    class ChatSendToo(BaseModel):
        type: Literal["chat.send"]

    with pytest.raises(ValueError, match="already registered by ChatSend"):
        MessageRegistry().register(ChatSend, ChatSendToo)


def test_registering_the_same_model_again_is_a_no_op() -> None:
    registry = MessageRegistry(ChatSend)
    registry.register(ChatSend)
    assert registry.types() == {"chat.send": ChatSend}


def test_types_returns_a_copy() -> None:
    registry = MessageRegistry(ChatSend)
    registry.types().clear()
    assert registry.types() == {"chat.send": ChatSend}


def test_single_model_registry() -> None:
    registry = MessageRegistry(ChatSend)
    assert isinstance(registry.parse({"type": "chat.send", "room": "r", "text": "t"}), ChatSend)
    assert _error('{"type": "ping"}', registry).details == {
        "type": "ping",
        "known_types": ["chat.send"],
    }
    assert _error('{"room": "r"}', registry).code == ErrorCode.INVALID_MESSAGE
    assert _error('{"type": "chat.send"}', registry).code == ErrorCode.VALIDATION_FAILED


def test_empty_registry() -> None:
    registry = MessageRegistry()
    error = _error('{"type": "ping"}', registry)
    assert error.code == ErrorCode.UNKNOWN_TYPE and error.details == {"known_types": []}
    assert registry.json_schema() == {}


def test_the_type_adapter_is_built_once_and_rebuilt_on_registration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    builds: list[object] = []
    real = TypeAdapter

    def counting(*args: Any, **kwargs: Any) -> Any:
        builds.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr("netrun_ws.protocol.TypeAdapter", counting)
    registry = default_registry()
    assert builds == []  # lazily built
    for _ in range(100):
        registry.parse('{"type": "ping"}')
    _error("{bad", registry)
    _error('{"type": "nope"}', registry)
    assert len(builds) == 1
    registry.register(ChatSend)
    registry.register(ChatSend)  # no change: no rebuild
    for _ in range(10):
        registry.parse('{"type": "chat.send", "room": "r", "text": "t"}')
    assert len(builds) == 2


def test_json_schema_describes_the_discriminated_union() -> None:
    registry = default_registry()
    registry.register(ChatSend)
    schema = registry.json_schema()
    json.dumps(schema)
    mapping = schema["discriminator"]["mapping"]
    assert schema["discriminator"]["propertyName"] == "type"
    assert set(mapping) == set(WIRE_TYPES) | {"chat.send"}
    assert len(schema["oneOf"]) == len(WIRE_TYPES)  # typing indicator covers two types
    user = schema["$defs"]["UserMessage"]
    assert user["additionalProperties"] is False
    assert set(user["required"]) == {"user_id", "username", "content"}
