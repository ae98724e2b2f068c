"""``netrun-ws asyncapi``: an AsyncAPI 3.0 document of a configured server's websocket protocol.

One channel (the websocket endpoint, ``server.path``) and two operations from the server's point of
view: ``send`` (every message it may send) and ``receive`` (every message it accepts). Payloads are
the messages' JSON schemas under ``components.schemas``; a registered type the server relays has a
second schema, ``<Name>_delivered``, with the optional ``pos`` of a channel delivery. The close
and error codes are schemas of their own (``CloseCode``, ``ErrorCode``), one titled constant
per code.
"""

from __future__ import annotations

import copy
from typing import Any

from netrun_ws.contracts.catalog import Catalog, MessageEntry
from netrun_ws.contracts.code_tables import close_codes, error_codes

ASYNCAPI_VERSION = "3.0.0"
REF_PREFIX = "#/components/schemas/"

_DESCRIPTION = (
    "The websocket protocol of a netrun-ws server (docs/protocol.md): JSON text frames, one "
    "object each, discriminated by `type`. The server's first message is the welcome "
    "(`connect`). Refused handshakes are HTTP statuses; a closed connection carries a close "
    "code from the `CloseCode` schema; an `error` reply's `code` is from `ErrorCode`."
)
_QUERY = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string", "description": "auth: anonymous - the user id to use."},
        "token": {
            "type": "string",
            "description": "auth: jwt with query_param set - a JWT (prefer the header).",
        },
        "session_id": {"type": "string", "description": "Resume this session."},
        "since": {
            "type": "string",
            "description": "With session_id: URL-encoded JSON {channel: {offset, epoch}}, the "
            "last position received per channel; missed messages are replayed.",
        },
    },
}


def _message(entry: MessageEntry, schema: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": entry.tags[0] if entry.tags else schema,
        "title": f"{' | '.join(entry.tags)} ({'built-in' if entry.builtin else 'registered'})",
        "contentType": "application/json",
        "payload": {"$ref": REF_PREFIX + schema},
    }
    if entry.description:
        message["summary"] = entry.description
    return message


def _code_schemas() -> dict[str, dict[str, Any]]:
    return {
        "CloseCode": {
            "title": "CloseCode",
            "description": "WebSocket close codes the server uses (netrun_ws/codes.py). "
            "4000-4099: terminal; 4100-4199: reconnect with backoff.",
            "type": "integer",
            "oneOf": [
                {"const": code, "title": name, "description": note}
                for name, code, note in close_codes()
            ],
        },
        "ErrorCode": {
            "title": "ErrorCode",
            "description": "Values of an error reply's `code` (a plugin may use its own).",
            "type": "string",
            "oneOf": [
                {"const": value, "title": name, "description": note}
                for name, value, note in error_codes()
            ],
        },
    }


def render_asyncapi(
    catalog: Catalog, *, version: str, host: str, port: int, path: str
) -> dict[str, Any]:
    """The AsyncAPI document (a JSON-able dict) of ``catalog`` served at ``host:port`` ``path``."""
    schemas = copy.deepcopy(catalog.schemas)
    messages: dict[str, dict[str, Any]] = {}
    sent: list[str] = []
    received: list[str] = []
    for entry in catalog.server:
        schema = entry.schema
        if not entry.builtin:
            schema = f"{entry.schema}_delivered"
            delivered = copy.deepcopy(catalog.schemas[entry.schema])
            position = {"$ref": REF_PREFIX + catalog.position_schema}
            delivered.setdefault("properties", {})["pos"] = position
            delivered["title"] = schema
            schemas[schema] = delivered
        messages[schema] = _message(entry, schema)
        sent.append(schema)
    for entry in catalog.client:
        messages.setdefault(entry.schema, _message(entry, entry.schema))
        received.append(entry.schema)
    schemas.update(_code_schemas())

    def refs(names: list[str]) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/websocket/messages/{name}"} for name in names]

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "netrun-ws websocket protocol",
            "version": version,
            "description": _DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "servers": {
            "configured": {
                "host": f"{host}:{port}",
                "protocol": "ws",
                "pathname": path,
                "description": "The configured server.host, server.port and server.path.",
            }
        },
        "channels": {
            "websocket": {
                "address": path,
                "title": "The websocket endpoint",
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
                "bindings": {"ws": {"method": "GET", "query": _QUERY, "bindingVersion": "0.1.0"}},
            }
        },
        "operations": {
            "sendServerMessage": {
                "action": "send",
                "title": "Messages the server sends",
                "channel": {"$ref": "#/channels/websocket"},
                "messages": refs(sent),
            },
            "receiveClientMessage": {
                "action": "receive",
                "title": "Messages the server accepts",
                "channel": {"$ref": "#/channels/websocket"},
                "messages": refs(received),
            },
        },
        "components": {"schemas": schemas, "messages": messages},
    }
