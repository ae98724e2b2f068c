"""Every message of a configured server, by direction, with one set of JSON schemas for them all.

The host's own messages come from :mod:`netrun_ws.contracts.messages`; the types plugins register
come from building the configured :class:`~netrun_ws.host.Host` (as ``netrun-ws check`` does, so a
plugin that fails is the same one-line error). A registered type is what the server accepts from
clients; plugins commonly send their types to clients too (a chat message relayed to a room), so
the server-to-client side lists them as well, each with the optional ``pos`` of a channel delivery.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from netrun_ws.contracts import messages

_NAME = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True, slots=True)
class MessageEntry:
    """One message type: its ``type`` tags and the name of its schema in :attr:`Catalog.schemas`."""

    tags: tuple[str, ...]
    schema: str
    description: str
    builtin: bool


@dataclass(frozen=True, slots=True)
class Catalog:
    """The messages of both directions; ``schemas`` holds every schema they refer to, by name."""

    server: tuple[MessageEntry, ...]
    """Server to client: the host's messages, then the registered types of other ``type``s."""
    client: tuple[MessageEntry, ...]
    """Client to server: the host's own (auth, refresh), then the registered types."""
    schemas: dict[str, dict[str, Any]]
    position_schema: str
    """The schema of the ``pos`` key a channel delivery carries (on registered types)."""


def configured_server(config: Any, env: str | None) -> tuple[Any, list[type[BaseModel]]]:
    """The loaded config (a path or a dict) and the message models its plugins register."""
    from netrun_ws.app import load_app_config
    from netrun_ws.host import Host

    loaded = load_app_config(config, env=env)
    host = Host(loaded)
    return loaded, list(dict.fromkeys(host.registry.types().values()))


def schema_name(name: str) -> str:
    """A schema name usable as an identifier (pydantic may name a def ``Model-Input``)."""
    return _NAME.sub("_", name)


def _tags(schema: dict[str, Any]) -> tuple[str, ...]:
    tag = schema.get("properties", {}).get("type", {})
    if "const" in tag:
        return (str(tag["const"]),)
    return tuple(str(value) for value in tag.get("enum", ()))


def model_schemas(
    models: list[type[BaseModel]], ref_prefix: str
) -> tuple[dict[type[BaseModel], str], dict[str, dict[str, Any]]]:
    """One set of named JSON schemas for ``models`` and every model they use (pydantic names
    same-named models apart), names made identifiers, refs reading ``<ref_prefix><name>``.

    Returns each model's schema name, and the schemas by name.
    """
    if not models:
        return {}, {}
    pairs = [(model, "validation") for model in models]
    keys, top = models_json_schema(pairs)  # type: ignore[arg-type]
    raw: dict[str, dict[str, Any]] = top.get("$defs", {})
    renamed = {name: schema_name(name) for name in raw}
    schemas = {
        renamed[name]: _rewrite_refs(schema, renamed, ref_prefix) for name, schema in raw.items()
    }
    names = {
        model: renamed[keys[(model, "validation")]["$ref"].removeprefix("#/$defs/")]
        for model in models
    }
    return names, schemas


def build_catalog(registered: list[type[BaseModel]], ref_prefix: str) -> Catalog:
    """The catalog of the host's messages and ``registered``; refs read ``<ref_prefix><name>``."""
    builtin: list[type[BaseModel]] = [
        *messages.SERVER_MESSAGES,
        *messages.CLIENT_MESSAGES,
        messages.ChannelPosition,
    ]
    names, schemas = model_schemas(list(dict.fromkeys([*builtin, *registered])), ref_prefix)

    def entry(model: type[BaseModel]) -> MessageEntry:
        name = names[model]
        schema = schemas[name]
        # The wire always carries "type": a default does not make it optional for a reader.
        required = schema.setdefault("required", [])
        if "type" not in required:
            required.insert(0, "type")
        description = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        return MessageEntry(_tags(schema), name, description, model in builtin)

    host_own = set(messages.CLIENT_MESSAGES)
    plugin_entries = tuple(entry(model) for model in registered if model not in host_own)
    position = entry(messages.ChannelPosition)
    host_sent = tuple(entry(m) for m in messages.SERVER_MESSAGES)
    # The host owns the types it sends: a registered model of the same type (the library's
    # ConnectMessage, ErrorMessage...) is what a client may send, not what it receives.
    taken = {tag for sent in host_sent for tag in sent.tags}
    relayed = tuple(e for e in plugin_entries if not taken.intersection(e.tags))
    return Catalog(
        server=(*host_sent, *relayed),
        client=(*(entry(m) for m in messages.CLIENT_MESSAGES), *plugin_entries),
        schemas=schemas,
        position_schema=position.schema,
    )


def _rewrite_refs(value: Any, renamed: dict[str, str], prefix: str) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str) and item.startswith("#/$defs/"):
                out[key] = prefix + renamed[item.removeprefix("#/$defs/")]
            else:
                out[key] = _rewrite_refs(item, renamed, prefix)
        return out
    if isinstance(value, list):
        return [_rewrite_refs(item, renamed, prefix) for item in value]
    return copy.copy(value)
