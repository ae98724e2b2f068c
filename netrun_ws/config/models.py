"""The validated shape of ``netrun_ws.yaml``: one pydantic model per section.

Every key is documented in its ``Field(description=...)``; docs/configuration.md is generated
from them. Unknown keys are errors everywhere except inside a plugin slot, whose extra keys are
that plugin's options (validated later against the plugin's own model). The slot fields of
:class:`Config` are made from the slot table (:mod:`netrun_ws.config.slot_table`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    SecretStr,
    StringConstraints,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from netrun_ws.config.slot_table import SLOTS, Slot, SlotTable

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
Overflow = Literal["disconnect", "drop_oldest"]
NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

# An origin as browsers send it: scheme://host[:port], never a path or trailing slash.
_ORIGIN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]+$")
_URL_PATH = re.compile(r"^/[^\s?#]*$")


def _check_origin(origin: str) -> str:
    if not _ORIGIN.match(origin):
        raise PydanticCustomError(
            "origin",
            "'{origin}' is not an origin; write scheme://host[:port] with no path or trailing "
            "slash, e.g. 'http://localhost:8000'",
            {"origin": origin},
        )
    return origin


Origin = Annotated[str, AfterValidator(_check_origin)]


def _kind_of(value: object) -> str:
    """Name a YAML value's kind the way a config author thinks of it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


class ServerConfig(BaseModel):
    """Where and how the server listens."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    host: NonEmptyStr = Field(
        default="127.0.0.1",
        description="Interface to bind. The default serves loopback only; use 0.0.0.0 to expose.",
    )
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port to listen on.")
    path: str = Field(
        default="/ws", description="URL path of the WebSocket endpoint; starts with '/'."
    )
    allowed_origins: list[Origin] = Field(
        default_factory=list,
        description=(
            "Origins (scheme://host[:port], no path) allowed to open a WebSocket, compared "
            "exactly with the handshake's Origin header. An empty list disables the Origin "
            "check (any origin, and clients that send none, are accepted)."
        ),
    )
    log_level: LogLevel = Field(
        default="info",
        description="Log level of uvicorn and netrun-ws (critical ... trace).",
    )
    handshake_timeout: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Seconds a client may take to authenticate: the authenticate hooks at the handshake, "
            "or the first message with first_message_auth; also how long a resume with "
            "since_frame=1 may take to send its since frame."
        ),
    )
    first_message_auth: bool = Field(
        default=False,
        description=(
            "When the handshake carries no credentials, accept and wait handshake_timeout for "
            'a first message {"type": "auth", "token": ...} (checked by the verify_token hook); '
            "anything else closes with 1008."
        ),
    )
    drain_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds to wait on shutdown for connections to close before forcing them.",
    )
    workers: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        default=1,
        description=(
            "Processes `netrun-ws run` serves the port with, each a node of the cluster through "
            "the store (auto: one per CPU core). More than one needs a shared store (redis)."
        ),
    )
    api_prefix: str = Field(
        default="/api",
        description="URL prefix of the HTTP API (POST <api_prefix>/publish); starts with '/'.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer key that clients of the HTTP API must send (Authorization: Bearer KEY); at "
            "least 16 characters. Unset or empty (the default): the API is not served. Use "
            "${VAR}; it is masked in output."
        ),
    )
    client_path: str | None = Field(
        default="/client",
        description=(
            "URL prefix the browser client is served at: <client_path>/netrun-ws.js and "
            "<client_path>/netrun-ws.d.ts (see docs/clients.md); null: not served."
        ),
    )
    revocation_ttl: float = Field(
        default=86400.0,
        gt=0,
        description=(
            "Seconds a revocation lasts: POST <api_prefix>/revoke (host.revoke_user) refuses "
            "the user's credentials issued until then for this long, and a revoked token "
            "without exp this long (one with exp until then). Set it to at least your longest "
            "token lifetime."
        ),
    )
    permessage_deflate: bool = Field(
        default=False,
        description=(
            "Enable the permessage-deflate extension. Off by default: it costs hundreds of KB "
            "of memory per connection."
        ),
    )
    ws_protocol: Literal["netrun", "uvicorn"] = Field(
        default="netrun",
        description=(
            "WebSocket implementation `netrun-ws run` gives uvicorn: 'netrun' is uvicorn's "
            "sans-I/O protocol with a leaner handshake (the upgrade request handed over parsed), "
            "corked writes and a synchronous send path (netrun_ws.transport.websocket, "
            "netrun_ws.transport.http); 'uvicorn' is uvicorn's own, unchanged. Same wire "
            "behaviour, except that 'netrun' answers an upgrade request websockets refuses "
            "before it is complete (431, 414) where uvicorn's sends nothing, and uvicorn's logs a "
            "spurious ERROR ('ASGI callable returned without completing handshake') after "
            "every refusal answered with an HTTP status. 'netrun' builds on "
            "uvicorn and websockets internals: with releases outside the tested range (see "
            "pyproject.toml) uvicorn's own serves instead, and a warning line says so."
        ),
    )
    gc_threshold: int | None = Field(
        default=5000,
        ge=100,
        description=(
            "First-generation threshold `netrun-ws run` sets on Python's garbage collector "
            "(gc.set_threshold); null keeps Python's own (700 on CPython 3.11). Every "
            "connection holds dozens of objects, and a low threshold makes collections "
            "frequent and the full ones walk every connection (see docs/performance.md)."
        ),
    )
    gc_freeze: bool = Field(
        default=True,
        description=(
            "Whether `netrun-ws run` moves everything alive after start-up (modules, plugins, "
            "schemas) out of the garbage collector's reach (gc.freeze), so later collections "
            "skip it."
        ),
    )

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_disables(cls, value: object) -> object:
        # `api_key: "${NETRUN_WS_API_KEY:-}"` turns the API off when the variable is unset.
        return None if value == "" else value

    @field_validator("api_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise PydanticCustomError("api_key", "must be at least 16 characters")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lowercase_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("path", "api_prefix", "client_path")
    @classmethod
    def _check_url_path(cls, value: str | None) -> str | None:
        if value is not None and not _URL_PATH.match(value):
            raise PydanticCustomError(
                "url_path", "must be a URL path starting with '/' (no spaces, '?' or '#')"
            )
        return value


class LimitsConfig(BaseModel):
    """Bounds that keep one client, or many, from exhausting the server."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_connections: int = Field(
        default=10000,
        gt=0,
        description="Open connections this node accepts in total; more are refused with HTTP 503.",
    )
    max_connections_per_user: int = Field(
        default=5,
        gt=0,
        description=(
            "Open connections one user (identity) may hold, across every node; more are refused "
            "with HTTP 429."
        ),
    )
    max_connections_per_ip: int = Field(
        default=100,
        gt=0,
        description=(
            "Open connections one client IP may hold on this node; more are refused with HTTP "
            "429. Behind a proxy, run uvicorn with --proxy-headers so the client IP is real."
        ),
    )
    max_message_bytes: int = Field(
        default=65536,
        gt=0,
        description="Largest incoming frame in bytes; a bigger one closes the connection (1009).",
    )
    send_queue: int = Field(
        default=256,
        gt=0,
        description=(
            "Outbound messages queued per connection before `overflow` applies. What the "
            "transport writes on its own (pongs, close frames) is bounded by the socket's write "
            "buffer instead: while it is over its high-water mark, the server stops reading "
            "from that client until it drains."
        ),
    )
    overflow: Overflow = Field(
        default="disconnect",
        description=(
            "What a full send queue does: 'disconnect' closes the slow client with 4101, "
            "'drop_oldest' discards its oldest queued message."
        ),
    )
    messages_per_second: float = Field(
        default=50.0,
        ge=0,
        description="Incoming messages per second allowed per connection; 0 disables the limit.",
    )
    max_consecutive_errors: int = Field(
        default=10,
        gt=0,
        description=(
            "Invalid messages in a row (each answered with an error reply) before the "
            "connection is closed with 4000."
        ),
    )
    frames_per_second: float = Field(
        default=2000.0,
        ge=0,
        description=(
            "Incoming frames per second one connection may send, every frame counted: data, "
            "continuation fragments, pings, pongs and close (a burst of one second's worth is "
            "allowed). Past it the server stops reading from that connection until its budget "
            "refills (its frames wait in TCP buffers). At least twice messages_per_second is "
            "always allowed. 0 disables the budget. Holds under every server.ws_protocol: "
            "netrun-ws's protocol counts the frames it parses; in front of uvicorn's "
            "(ws_protocol 'uvicorn', or the fallback when its internals are not the tested "
            "ones) the guard counts frame headers."
        ),
    )
    request_timeout: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Seconds from TCP accept (or, on a kept-alive connection, from the first byte of the "
            "next request) until the request's head is read and the server answers it or hands "
            "the upgrade to the websocket protocol. Slower connections get HTTP 408 and are "
            "closed (slowloris). An HTTP route must start its answer within this time."
        ),
    )
    max_pending_requests: int = Field(
        default=1000,
        gt=0,
        description=(
            "Connections this node holds before their request is read (see request_timeout). "
            "Past it, the ones pending longest are closed (half a second later, so that a "
            "burst of real clients can complete its requests first); past twice it, a new "
            "connection is closed at once."
        ),
    )
    max_pending_requests_per_ip: int = Field(
        default=100,
        gt=0,
        description=(
            "Connections from one client IP held before their request is read; past it, that "
            "IP's oldest pending ones are closed half a second later. Behind a proxy every "
            "connection comes from the proxy's IP: raise it to the bursts the proxy forwards."
        ),
    )


class HistoryConfig(BaseModel):
    """Per-channel message history, so a client that reconnects recovers what it missed (see
    docs/protocol.md, "Positions" and "Recovery")."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    rooms_enabled: bool = Field(
        default=True,
        description=(
            "Give room messages (publish_room, the publish API's room target) a position and keep "
            "them for recovery. Off: no `pos`, no replay for rooms."
        ),
    )
    rooms_size: int = Field(
        default=200, gt=0, le=100000, description="Messages kept per room for recovery."
    )
    rooms_ttl: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="Seconds a room message is kept for recovery; older ones are not replayed.",
    )
    users_enabled: bool = Field(
        default=True,
        description=(
            "Give user messages (send_to_user, the publish API's user target) a position and keep "
            "them for recovery. Off: no `pos`, no replay for users."
        ),
    )
    users_size: int = Field(
        default=200, gt=0, le=100000, description="Messages kept per user for recovery."
    )
    users_ttl: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="Seconds a user message is kept for recovery; older ones are not replayed.",
    )
    max_replay_messages: int = Field(
        default=1000,
        gt=0,
        description=(
            "Most messages one resume replays over all its channels; a channel that does not fit "
            "gets a `gap` with reason `replay_limit`."
        ),
    )
    max_replay_bytes: int = Field(
        default=1048576,
        gt=0,
        description=(
            "Most bytes (UTF-8, `pos` included) one resume replays over all its channels (same "
            "rule)."
        ),
    )
    max_since_channels: int = Field(
        default=100,
        gt=0,
        le=10000,
        description=(
            "Most channels a resume's `since` may name; more is refused with HTTP 400. The "
            "welcome says it (`max_since_channels`), and the shipped clients name no more."
        ),
    )


class SlotConfig(BaseModel):
    """A plugin chosen for a slot, with its options.

    Written flat in YAML: ``auth: {plugin: jwt, secret: x}`` gives ``plugin="jwt"`` and
    ``options={"secret": "x"}``; a bare string ``auth: jwt`` means ``{plugin: jwt}``. An explicit
    ``options:`` mapping is also accepted and merged with the flat keys, so no plugin can have an
    option literally named ``options``. Dumps back to the flat form.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    plugin: NonEmptyStr = Field(
        description="The plugin's name (built-in, entry point or plugins_dir file) or module path."
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="The slot's other keys, validated against the plugin's own options model.",
    )

    @model_validator(mode="before")
    @classmethod
    def _collect_options(cls, data: object) -> object:
        if isinstance(data, SlotConfig):
            return data
        if isinstance(data, str):
            return {"plugin": data, "options": {}}
        if not isinstance(data, Mapping):
            raise PydanticCustomError(
                "slot_type",
                "expected a plugin name or a mapping with a 'plugin' key, got {kind}",
                {"kind": _kind_of(data)},
            )
        flat = dict(data)
        explicit = flat.pop("options", None)
        if explicit is not None and not isinstance(explicit, Mapping):
            raise PydanticCustomError(
                "slot_options", "'options' must be a mapping of option names to values"
            )
        if explicit is not None and "plugin" in explicit:
            raise PydanticCustomError(
                "slot_options", "'plugin' belongs beside 'options', not inside it"
            )
        has_plugin = "plugin" in flat
        plugin = flat.pop("plugin", None)
        collected: dict[str, Any] = {}
        for key, value in dict(explicit or {}).items():
            if key in flat:
                raise PydanticCustomError(
                    "slot_duplicate_option",
                    "option '{key}' is given both flat and under 'options'",
                    {"key": key},
                )
            collected[key] = value
        collected.update(flat)
        result: dict[str, Any] = {"options": collected}
        if has_plugin:  # absent stays absent, so pydantic reports "field required"
            result["plugin"] = plugin
        return result

    @model_serializer
    def _dump_flat(self) -> dict[str, Any]:
        return {"plugin": self.plugin, **self.options}

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The stored shape (plugin + options) is not what a YAML author writes; describe the
        # flat and bare-string forms instead.
        plugin = {"type": "string", "minLength": 1, "description": "Plugin name or module path."}
        return {
            "title": "Slot",
            "description": (
                "A plugin name, or a mapping with 'plugin' and the plugin's options as "
                "further keys."
            ),
            "anyOf": [
                plugin,
                {
                    "type": "object",
                    "properties": {"plugin": plugin},
                    "required": ["plugin"],
                    "additionalProperties": True,
                },
            ],
        }


def _one_or_many(value: object) -> object:
    # A list slot may be written as one entry, or null for none.
    if value is None:
        return []
    if isinstance(value, str | Mapping | SlotConfig):
        return [value]
    return value


PluginList = Annotated[list[SlotConfig], BeforeValidator(_one_or_many)]
"""The type of a list slot (e.g. ``metrics``)."""


class ConfigSections(BaseModel):
    """The sections of a config; :func:`config_model` adds a field per slot, and ``plugins_dir``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    server: ServerConfig = Field(
        default_factory=ServerConfig, description="Listening address, paths and timeouts."
    )
    limits: LimitsConfig = Field(
        default_factory=LimitsConfig, description="Connection, size, queue and rate limits."
    )
    history: HistoryConfig = Field(
        default_factory=HistoryConfig,
        description="Room and user message history kept for recovery after a reconnect.",
    )

    @field_validator("server", "limits", "history", mode="before")
    @classmethod
    def _empty_section_means_defaults(cls, value: object) -> object:
        # `server:` with nothing after it is YAML null; the author meant "all defaults".
        return {} if value is None else value


_PLUGINS_DIR: Any = Field(
    default="plugins",
    description=(
        "Directory of plugin files and packages, relative to the config file's directory; "
        "made absolute on load. If given explicitly it must exist. null disables it."
    ),
)
_RESERVED_KEYS = frozenset({"plugins_dir", "environments"})


def slot_field(slot: Slot) -> tuple[Any, Any]:
    """The ``Config`` field of one slot: its type from the slot's kind, its default plugins."""
    defaults = [SlotConfig(plugin=name) for name in slot.default_plugins]
    if slot.many:
        return PluginList, Field(default=defaults, description=slot.description)
    annotation: Any = SlotConfig | None if slot.nullable else SlotConfig
    default = defaults[0] if defaults else None
    return annotation, Field(default=default, description=slot.description)


def config_model(slots: Sequence[Slot]) -> type[ConfigSections]:
    """The config model: :class:`ConfigSections`, then a field per slot, in the table's order.

    ``plugins_dir`` goes just before the app plugins (at the end if there are none), where the
    reference has always listed it.
    """
    fields: dict[str, Any] = {}
    for slot in slots:
        if slot.name in ConfigSections.model_fields or slot.name in _RESERVED_KEYS:
            raise ValueError(f"slot {slot.name!r}: the config already has a key of that name")
        if slot.app:
            fields.setdefault("plugins_dir", (str | None, _PLUGINS_DIR))
        fields[slot.name] = slot_field(slot)
    fields.setdefault("plugins_dir", (str | None, _PLUGINS_DIR))
    return create_model(
        "Config",
        __base__=ConfigSections,
        __module__=__name__,
        __doc__="A validated netrun_ws.yaml, with its environment overlay and overrides applied.",
        **fields,
    )


if TYPE_CHECKING:
    # What the type checker sees: the table's kinds as this module's types.
    class Config(ConfigSections, SlotTable[SlotConfig, SlotConfig | None, list[SlotConfig]]):
        plugins_dir: str | None = _PLUGINS_DIR

else:
    Config = config_model(SLOTS)


class ConfigFile(Config):
    """The file's full shape, ``environments`` included; for JSON schema and docs only.

    The loader applies the chosen overlay and validates the result as :class:`Config`.
    """

    environments: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "Named overlays, chosen with --env NAME or NETRUN_WS_ENV, deep-merged over the rest "
            "of the file: mappings merge, lists and scalars replace, and a slot whose 'plugin' "
            "changes is replaced whole (options included)."
        ),
    )


SLOT_KEYS: frozenset[str] = frozenset(slot.name for slot in SLOTS if not slot.many)
"""Top-level keys holding a single plugin slot (merged by the slot rule in overlays)."""
