"""The typed JSON message protocol: built-in message models and the registry that parses frames.

Every message is a JSON object with a string ``type``. Each model has a ``type: Literal[...]``
field, so the registered models form one discriminated union; ``MessageRegistry.parse`` validates
a frame against it in a single pass and returns the model instance for its ``type``.

``parse`` raises ``ProtocolError`` (a ValueError) with a ``netrun_ws.codes.ErrorCode`` value:

* ``invalid_json``: the frame is not valid JSON;
* ``invalid_message``: valid JSON, but not an object with a string ``type``;
* ``unknown_type``: ``type`` names no registered model (``details["known_types"]`` lists them);
* ``validation_failed``: the model rejected the fields (``details["errors"]``: pydantic's errors
  without the offending input values, at most ``MAX_REPORTED_ERRORS`` of them).

No detail echoes input beyond a bound: every string that may come from the client (a field name
in ``loc``, a tag, a ``msg`` or ``ctx`` value, a JSON error reason) is cut to ``MAX_ECHO_CHARS``,
a ``loc`` to ``MAX_LOC_PARTS`` parts, and the errors listed stop once they hold
``MAX_DETAILS_CHARS`` characters, so an error reply stays small whatever the frame held.

Built-in models forbid unknown fields (``extra="forbid"``).
"""

from __future__ import annotations

import functools
import operator
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Literal, cast, get_args, get_origin

import pydantic_core
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    ValidationError,
)

from netrun_ws.codes import ErrorCode

__all__ = [
    "BUILTIN_MESSAGE_MODELS",
    "MESSAGE_TYPES",
    "AckMessage",
    "ConnectMessage",
    "ConnectionInfo",
    "ConnectionState",
    "DisconnectMessage",
    "ErrorMessage",
    "HeartbeatAckMessage",
    "HeartbeatMessage",
    "MessageRegistry",
    "MessageType",
    "NotificationMessage",
    "PingMessage",
    "PongMessage",
    "PresenceUpdateMessage",
    "ProtocolError",
    "SessionUpdatedMessage",
    "TypingIndicatorMessage",
    "UserJoinedMessage",
    "UserLeftMessage",
    "UserMessage",
    "WebSocketMessage",
    "default_registry",
    "parse_message",
]

#: At most this many field errors are reported back in ``details["errors"]``.
MAX_REPORTED_ERRORS = 20
#: Strings echoed back in error details (a tag, a field name, a message, a context value) are
#: cut to this length.
MAX_ECHO_CHARS = 100
#: A reported ``loc`` keeps its first parts, then "..." (a deeply nested unknown key).
MAX_LOC_PARTS = 8
#: The reported errors stop (at least one is kept) once their strings hold this many characters.
MAX_DETAILS_CHARS = 4096


class MessageType(str, Enum):
    """The wire ``type`` values of netrun-websocket."""

    PING = "ping"
    PONG = "pong"
    CONNECT = "connect"
    DISCONNECT = "disconnect"
    ACK = "ack"
    ERROR = "error"
    USER_MESSAGE = "user_message"
    USER_TYPING = "user_typing"
    USER_STOPPED_TYPING = "user_stopped_typing"
    USER_JOINED = "user_joined"
    USER_LEFT = "user_left"
    PRESENCE_UPDATE = "presence_update"
    SESSION_UPDATED = "session_updated"
    NOTIFICATION = "notification"
    HEARTBEAT = "heartbeat"
    HEARTBEAT_ACK = "heartbeat_ack"


class ConnectionState(str, Enum):
    """Where a connection is in its life."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"
    DISCONNECTED = "disconnected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"


def _utc_now() -> datetime:
    return datetime.now(UTC)


# -- message models ----------------------------------------------------------------------------


class WebSocketMessage(BaseModel):
    """Base of all built-in messages: ``type``, ``timestamp`` (default now, UTC), ``message_id``."""

    model_config = ConfigDict(extra="forbid")

    type: MessageType
    timestamp: datetime = Field(default_factory=_utc_now)
    message_id: str | None = None


class PingMessage(WebSocketMessage):
    """Application-level ping; answer with ``PongMessage``."""

    type: Literal[MessageType.PING] = MessageType.PING


class PongMessage(WebSocketMessage):
    """Answer to a ping."""

    type: Literal[MessageType.PONG] = MessageType.PONG


class HeartbeatMessage(WebSocketMessage):
    """Server heartbeat; answer with ``HeartbeatAckMessage``."""

    type: Literal[MessageType.HEARTBEAT] = MessageType.HEARTBEAT


class HeartbeatAckMessage(WebSocketMessage):
    """Answer to a heartbeat."""

    type: Literal[MessageType.HEARTBEAT_ACK] = MessageType.HEARTBEAT_ACK


class ConnectMessage(WebSocketMessage):
    """Sent on connect: who the connection is and how to reconnect and keep it alive."""

    type: Literal[MessageType.CONNECT] = MessageType.CONNECT
    connection_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    heartbeat_interval: float | None = None
    reconnect: dict[str, JsonValue] | None = None  # ReconnectionConfig.to_client_policy()


class DisconnectMessage(WebSocketMessage):
    """Announces a close, with the close code and reason."""

    type: Literal[MessageType.DISCONNECT] = MessageType.DISCONNECT
    code: int | None = None
    reason: str | None = None


class AckMessage(WebSocketMessage):
    """Acknowledges the message whose ``message_id`` is ``ack_id``."""

    type: Literal[MessageType.ACK] = MessageType.ACK
    ack_id: str | None = None
    status: str | None = None


class ErrorMessage(WebSocketMessage):
    """An error reply; ``code`` is a ``netrun_ws.codes.ErrorCode`` value for protocol errors."""

    type: Literal[MessageType.ERROR] = MessageType.ERROR
    error: str
    code: str | None = None
    details: JsonValue = None


class UserMessage(WebSocketMessage):
    """A chat-style message from a user."""

    type: Literal[MessageType.USER_MESSAGE] = MessageType.USER_MESSAGE
    user_id: str
    username: str
    content: str
    metadata: dict[str, JsonValue] | None = None


class TypingIndicatorMessage(WebSocketMessage):
    """``user_typing`` (the default) or ``user_stopped_typing``."""

    type: Literal[MessageType.USER_TYPING, MessageType.USER_STOPPED_TYPING] = (
        MessageType.USER_TYPING
    )
    user_id: str
    username: str


class UserJoinedMessage(WebSocketMessage):
    """A user joined (the server, or a room)."""

    type: Literal[MessageType.USER_JOINED] = MessageType.USER_JOINED
    user_id: str
    username: str | None = None
    room: str | None = None


class UserLeftMessage(WebSocketMessage):
    """A user left (the server, or a room)."""

    type: Literal[MessageType.USER_LEFT] = MessageType.USER_LEFT
    user_id: str
    username: str | None = None
    room: str | None = None


class PresenceUpdateMessage(WebSocketMessage):
    """A user's presence changed."""

    type: Literal[MessageType.PRESENCE_UPDATE] = MessageType.PRESENCE_UPDATE
    user_id: str
    status: Literal["online", "away", "busy", "offline"]
    username: str | None = None
    last_seen: datetime | None = None
    status_message: str | None = None


class SessionUpdatedMessage(WebSocketMessage):
    """The session's saved state changed."""

    type: Literal[MessageType.SESSION_UPDATED] = MessageType.SESSION_UPDATED
    session_id: str | None = None
    data: dict[str, JsonValue] | None = None


class NotificationMessage(WebSocketMessage):
    """A notification; ``message`` may also be sent as ``body``."""

    type: Literal[MessageType.NOTIFICATION] = MessageType.NOTIFICATION
    title: str
    message: str = Field(validation_alias=AliasChoices("message", "body"))
    priority: Literal["low", "normal", "high"] = "normal"
    category: str | None = None
    data: dict[str, JsonValue] | None = None


class ConnectionInfo(BaseModel):
    """What is known about one connection (not a wire message)."""

    model_config = ConfigDict(extra="forbid")

    connection_id: str
    user_id: str
    session_id: str | None = None
    username: str | None = None
    state: ConnectionState = ConnectionState.CONNECTED
    connected_at: datetime = Field(default_factory=_utc_now)
    last_activity: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


BUILTIN_MESSAGE_MODELS: tuple[type[WebSocketMessage], ...] = (
    PingMessage,
    PongMessage,
    ConnectMessage,
    DisconnectMessage,
    AckMessage,
    ErrorMessage,
    UserMessage,
    TypingIndicatorMessage,
    UserJoinedMessage,
    UserLeftMessage,
    PresenceUpdateMessage,
    SessionUpdatedMessage,
    NotificationMessage,
    HeartbeatMessage,
    HeartbeatAckMessage,
)
#: What a ``protocol: {plugin: json, schemas: [...]}`` module exports: the models it registers.
MESSAGE_TYPES = BUILTIN_MESSAGE_MODELS


# -- errors -----------------------------------------------------------------------------------


class ProtocolError(ValueError):
    """A frame that cannot become a message. ``code`` is an ``ErrorCode`` value, ``error`` a
    human-readable message, ``details`` JSON-able specifics (never the offending input)."""

    def __init__(self, code: str, error: str, details: JsonValue = None) -> None:
        super().__init__(error)
        self.code = code
        self.error = error
        self.details = details

    def to_message(self) -> ErrorMessage:
        """The ``{"type": "error", ...}`` reply for this error."""
        return ErrorMessage(error=self.error, code=self.code, details=self.details)

    def __repr__(self) -> str:
        return f"ProtocolError(code={self.code!r}, error={self.error!r})"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "..."


def _json_safe(value: object) -> JsonValue:
    if value is None or isinstance(value, bool | int | float):
        return value
    return _clip(str(value))


def _clipped_loc(loc: tuple[int | str, ...]) -> list[JsonValue]:
    # Field names come from the client too (an unknown key, a dict key): never echoed whole.
    parts: list[JsonValue] = [part if isinstance(part, int) else _clip(part) for part in loc]
    return parts if len(parts) <= MAX_LOC_PARTS else [*parts[: MAX_LOC_PARTS - 1], "..."]


def _field_errors(exc: ValidationError, tag: str | None) -> list[JsonValue]:
    """pydantic's errors without input values, every string clipped, within the budget (also
    the publish API's 422 details). ``tag``: a union tag level to leave out of ``loc``."""
    errors: list[JsonValue] = []
    budget = MAX_DETAILS_CHARS
    for error in exc.errors(include_url=False, include_input=False)[:MAX_REPORTED_ERRORS]:
        loc = error["loc"]
        if tag is not None and loc and loc[0] == tag:
            loc = loc[1:]  # the union's tag level says nothing the client does not know
        # A msg may quote the input (a nested union's tag): clipped like everything else.
        entry: dict[str, JsonValue] = {
            "loc": _clipped_loc(loc),
            "msg": _clip(error["msg"]),
            "type": error["type"],
        }
        context = error.get("ctx")
        if context:
            entry["ctx"] = {_clip(key): _json_safe(value) for key, value in context.items()}
        budget -= len(str(entry))
        if errors and budget < 0:
            break
        errors.append(entry)
    return errors


# -- registry ---------------------------------------------------------------------------------


def _type_tags(model: object) -> tuple[str, ...]:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{model!r} is not a pydantic BaseModel subclass")
    field = model.model_fields.get("type")
    annotation = field.annotation if field is not None else None
    if get_origin(annotation) is not Literal:
        raise ValueError(
            f"{model.__name__} cannot be registered: it needs a 'type: Literal[...]' field"
        )
    tags: list[str] = []
    for value in get_args(annotation):
        tag = value.value if isinstance(value, Enum) else value
        if not isinstance(tag, str) or not tag:
            raise ValueError(
                f"{model.__name__} cannot be registered: its 'type' values must be non-empty "
                f"strings, got {value!r}"
            )
        tags.append(tag)
    return tuple(tags)


def _may_hold_non_json_number(data: str | bytes | bytearray) -> bool:
    """Cheap screen: pydantic's parser reads NaN/Infinity tokens as numbers; JSON has neither."""
    if isinstance(data, str):
        return "NaN" in data or "Infinity" in data
    return b"NaN" in data or b"Infinity" in data


def _refuse_non_json_numbers(data: str | bytes | bytearray) -> None:
    """Strict re-parse of the rare frame that mentions NaN/Infinity (maybe only inside a string)."""
    try:
        pydantic_core.from_json(data, allow_inf_nan=False)
    except ValueError as exc:
        reason = _clip(str(exc))
        raise ProtocolError(
            ErrorCode.INVALID_JSON, "message is not valid JSON", {"reason": reason}
        ) from None


class MessageRegistry:
    """The set of message models a server accepts, parsed through one cached TypeAdapter."""

    def __init__(self, *models: type[BaseModel]) -> None:
        self._models: dict[str, type[BaseModel]] = {}
        self._adapter: TypeAdapter[Any] | None = None
        if models:
            self.register(*models)

    def register(self, *models: type[BaseModel]) -> None:
        """Add models; all or none (on error nothing is registered).

        Raises TypeError for a non-model, ValueError for a model without a ``type`` Literal
        field or whose type is already taken by another model. Registering the same model
        again is a no-op.
        """
        pending: dict[str, type[BaseModel]] = {}
        for model in models:
            for tag in _type_tags(model):
                owner = self._models.get(tag) or pending.get(tag)
                if owner is not None and owner is not model:
                    raise ValueError(
                        f"cannot register {model.__name__}: message type {tag!r} is already "
                        f"registered by {owner.__name__}"
                    )
                pending[tag] = model
        if all(self._models.get(tag) is model for tag, model in pending.items()):
            return
        self._models.update(pending)
        self._adapter = None  # rebuilt on next use, once

    def types(self) -> dict[str, type[BaseModel]]:
        """A copy of the ``type`` value -> model mapping."""
        return dict(self._models)

    def __contains__(self, message_type: object) -> bool:
        return message_type in self._models

    def __len__(self) -> int:
        return len(self._models)

    def _union_adapter(self) -> TypeAdapter[Any]:
        adapter = self._adapter
        if adapter is None:
            models = list(dict.fromkeys(self._models.values()))  # unique, registration order
            if len(models) == 1:
                adapter = TypeAdapter(models[0])  # a one-member union has no discriminator
            else:
                union = functools.reduce(operator.or_, models)
                tagged: Any = Annotated[union, Field(discriminator="type")]
                adapter = TypeAdapter(tagged)
            self._adapter = adapter
        return adapter

    def parse(self, data: str | bytes | bytearray | dict[str, Any]) -> BaseModel:
        """Return the registered model instance for ``data``'s ``type``, or raise ProtocolError.

        ``str``/``bytes`` are parsed and validated in one pass (``validate_json``).
        """
        if not self._models:
            raise ProtocolError(
                ErrorCode.UNKNOWN_TYPE, "no message types are registered", {"known_types": []}
            )
        adapter = self._adapter or self._union_adapter()
        try:
            if isinstance(data, str | bytes | bytearray):
                if _may_hold_non_json_number(data):
                    _refuse_non_json_numbers(data)
                # The adapter's schema validator itself: TypeAdapter.validate_json only adds
                # keyword handling that costs a sizeable share of a small message's validation.
                return adapter.validator.validate_json(data)  # type: ignore[no-any-return]
            if isinstance(data, dict):
                return adapter.validate_python(data)  # type: ignore[no-any-return]
        except ValidationError as exc:
            raise self._classify(data, exc) from None
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            "a message must be a JSON object with a string 'type'",
            {"received": type(data).__name__},
        )

    def parse_text(self, data: str) -> BaseModel:
        """:meth:`parse` for a text frame, the per-message path: once the union is built, a text
        that mentions neither NaN nor Infinity costs one validator call and nothing else."""
        adapter = self._adapter
        if adapter is None or "NaN" in data or "Infinity" in data:
            return self.parse(data)
        try:
            return adapter.validator.validate_json(data)  # type: ignore[no-any-return]
        except ValidationError as exc:
            raise self._classify(data, exc) from None

    def _classify(self, data: object, exc: ValidationError) -> ProtocolError:
        """Turn a failed validation into the documented error (cold path: may re-read data)."""
        first = exc.errors(include_url=False, include_input=False)[0]
        if first["type"] == "json_invalid":
            reason = _clip(str((first.get("ctx") or {}).get("error", "malformed JSON")))
            return ProtocolError(
                ErrorCode.INVALID_JSON, "message is not valid JSON", {"reason": reason}
            )
        if isinstance(data, str | bytes | bytearray):
            try:
                data = pydantic_core.from_json(data)
            except ValueError:
                return ProtocolError(ErrorCode.INVALID_JSON, "message is not valid JSON")
        if not isinstance(data, dict):
            return ProtocolError(
                ErrorCode.INVALID_MESSAGE,
                "a message must be a JSON object with a string 'type'",
                {"received": _json_kind(data)},
            )
        tag = data.get("type")
        if not isinstance(tag, str):
            problem = "missing" if tag is None else f"a JSON {_json_kind(tag)}, not a string"
            return ProtocolError(
                ErrorCode.INVALID_MESSAGE,
                f"a message needs a string 'type' (it is {problem})",
                {"received": "object"},
            )
        if tag not in self._models:
            return ProtocolError(
                ErrorCode.UNKNOWN_TYPE,
                f"unknown message type {_clip(tag)!r}",
                {"type": _clip(tag), "known_types": list(sorted(self._models))},
            )
        return ProtocolError(
            ErrorCode.VALIDATION_FAILED,
            f"invalid {tag!r} message",
            {"type": tag, "error_count": exc.error_count(), "errors": _field_errors(exc, tag)},
        )

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema of the registered union (what ``parse`` accepts)."""
        if not self._models:
            return {}
        return self._union_adapter().json_schema()


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def default_registry() -> MessageRegistry:
    """A new registry holding the built-in message models (add your own with ``register``)."""
    return MessageRegistry(*BUILTIN_MESSAGE_MODELS)


_BUILTIN_REGISTRY = default_registry()


def parse_message(data: str | bytes | bytearray | dict[str, Any]) -> WebSocketMessage:
    """Parse one built-in message by its ``type``; raises ProtocolError (a ValueError)."""
    message = _BUILTIN_REGISTRY.parse(data)
    return cast(WebSocketMessage, message)  # only built-in models are registered
