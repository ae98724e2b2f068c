"""``netrun-ws typescript``: TypeScript declarations of every message, from their JSON schemas.

The converter covers what pydantic emits for message models: objects with required and optional
properties, literals and enums, unions (``anyOf``/``oneOf``), arrays and tuples, dicts
(``additionalProperties``), ``$ref`` to named schemas, and null. A schema outside that subset
becomes ``unknown`` (never a wrong type). Then come the discriminated unions of each direction,
a helper to pick a message by its ``type``, and the close and error codes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from netrun_ws.contracts.catalog import Catalog, MessageEntry
from netrun_ws.contracts.code_tables import close_codes, error_codes

REF_PREFIX = "#/$defs/"
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_JSON_VALUE = "string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }"


def _literal(value: object) -> str:
    if isinstance(value, bool | int | float | str) or value is None:
        return json.dumps(value)
    return "unknown"


def _key(name: str) -> str:
    return name if _IDENTIFIER.match(name) else json.dumps(name)


def _doc(text: object, indent: str) -> list[str]:
    if not isinstance(text, str) or not text.strip():
        return []
    lines = text.strip().replace("*/", "*\\/").splitlines()
    if len(lines) == 1:
        return [f"{indent}/** {lines[0]} */"]
    return [f"{indent}/**", *(f"{indent} * {line}".rstrip() for line in lines), f"{indent} */"]


def _union(parts: Iterable[str]) -> str:
    unique = list(dict.fromkeys(parts))
    if not unique:
        return "never"
    if "unknown" in unique:
        return "unknown"
    return " | ".join(unique)


def _wrap(text: str) -> str:
    """Parenthesise a union or intersection before ``[]``."""
    return f"({text})" if (" | " in text or " & " in text) else text


def ts_type(schema: Any, indent: str = "") -> str:
    """The TypeScript type of one JSON schema (the pydantic subset; anything else is unknown)."""
    if schema is True or schema == {}:
        return "unknown"
    if not isinstance(schema, dict):
        return "never" if schema is False else "unknown"
    if "$ref" in schema:
        ref = str(schema["$ref"])
        return ref.removeprefix(REF_PREFIX) if ref.startswith(REF_PREFIX) else "unknown"
    if "const" in schema:
        return _literal(schema["const"])
    if "enum" in schema:
        return _union(_literal(value) for value in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return _union(ts_type(member, indent) for member in schema[key])
    if "allOf" in schema:
        parts = [_wrap(ts_type(member, indent)) for member in schema["allOf"]]
        return " & ".join(dict.fromkeys(parts)) or "unknown"
    kind = schema.get("type")
    if isinstance(kind, list):
        return _union(ts_type({**schema, "type": one}, indent) for one in kind)
    if kind == "string":
        return "string"
    if kind in ("integer", "number"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "null":
        return "null"
    if kind == "array":
        return _array(schema, indent)
    if kind == "object" or "properties" in schema:
        return _object(schema, indent)
    return "unknown"


def _array(schema: dict[str, Any], indent: str) -> str:
    prefix = schema.get("prefixItems")
    if isinstance(prefix, list):
        items = [ts_type(member, indent) for member in prefix]
        rest = schema.get("items")
        if rest not in (None, False):
            items.append(f"...{_wrap(ts_type(rest, indent))}[]")
        return f"[{', '.join(items)}]"
    return f"{_wrap(ts_type(schema.get('items', {}), indent))}[]"


def _object(schema: dict[str, Any], indent: str) -> str:
    properties: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True if not properties else False)
    extra_type = None if extra is False else ts_type(extra if extra is not True else {}, indent)
    if not properties:
        return f"{{ [key: string]: {extra_type or 'never'} }}"
    body = _members(schema, indent + "  ")
    if extra_type is not None:
        # Declared properties must fit an index signature, so "any other key" is a second part.
        return f"{{\n{body}\n{indent}}} & {{ [key: string]: unknown }}"
    return f"{{\n{body}\n{indent}}}"


def _members(schema: dict[str, Any], indent: str) -> str:
    required = set(schema.get("required", ()))
    lines: list[str] = []
    for name, member in schema.get("properties", {}).items():
        if isinstance(member, dict):
            lines.extend(_doc(member.get("description"), indent))
        optional = "" if name in required else "?"
        lines.append(f"{indent}{_key(name)}{optional}: {ts_type(member, indent)};")
    return "\n".join(lines)


def declaration(name: str, schema: Any) -> list[str]:
    """``export interface`` for a closed object with properties, else ``export type``."""
    lines = _doc(schema.get("description") if isinstance(schema, dict) else None, "")
    if name == "JsonValue" and schema == {}:
        return [*lines, f"export type JsonValue = {_JSON_VALUE};"]
    if (
        isinstance(schema, dict)
        and schema.get("type") == "object"
        and schema.get("properties")
        and schema.get("additionalProperties", False) is False
    ):
        return [*lines, f"export interface {name} {{", _members(schema, "  "), "}"]
    return [*lines, f"export type {name} = {ts_type(schema)};"]


def _union_alias(name: str, members: list[str], doc: str) -> list[str]:
    body = "".join(f"\n  | {member}" for member in dict.fromkeys(members)) or " never"
    return [f"/** {doc} */", f"export type {name} ={body};"]


def _codes() -> list[str]:
    close: list[str] = []
    for name, code, note in close_codes():
        close.extend([*_doc(note, "  "), f"  {name}: {code};"])
    errors: list[str] = []
    for name, value, note in error_codes():
        errors.extend([*_doc(note, "  "), f"  {name}: {json.dumps(value)};"])
    return [
        "/** WebSocket close codes the server uses (docs/protocol.md, netrun_ws/codes.py). */",
        "export interface CloseCodes {",
        *close,
        "}",
        "export type CloseCode = CloseCodes[keyof CloseCodes];",
        "",
        "/** Values of an error reply's `code` (a plugin may use its own). */",
        "export interface ErrorCodes {",
        *errors,
        "}",
        "export type ErrorCode = ErrorCodes[keyof ErrorCodes];",
    ]


def render_typescript(catalog: Catalog, source: str) -> str:
    """The declarations file: every schema, the two unions, the pick-by-type helper, the codes."""
    out = [
        f"// Generated by `netrun-ws typescript` from {source}. Do not edit: regenerate.",
        "// Every message of the websocket protocol (docs/protocol.md), built-in and registered",
        "// by the configured plugins.",
        "",
    ]
    for name, schema in catalog.schemas.items():
        out.extend([*declaration(name, schema), ""])
    out.extend(
        [
            "/** A message delivered on a channel (a room or a user) carries its position. */",
            f"export type Delivered<T> = T & {{ pos?: {catalog.position_schema} }};",
            "",
        ]
    )

    def member(entry: MessageEntry) -> str:
        return entry.schema if entry.builtin else f"Delivered<{entry.schema}>"

    out.extend(
        _union_alias(
            "ServerMessage",
            [member(entry) for entry in catalog.server],
            "Every message the server may send.",
        )
    )
    out.append("")
    out.extend(
        _union_alias(
            "ClientMessage",
            [entry.schema for entry in catalog.client],
            "Every message the server accepts.",
        )
    )
    out.extend(
        [
            "",
            "/** The member of a message union `M` whose `type` may be `T`. */",
            "export type MessageOf<M, T extends string> = M extends { type: infer U }",
            "  ? T extends U",
            "    ? M",
            "    : never",
            "  : never;",
            "",
            "/** One optional handler per server message type, each given its own message type. */",
            "export type ServerHandlers = {",
            '  [T in ServerMessage["type"]]?: (message: MessageOf<ServerMessage, T>) => void;',
            "};",
            "",
            *_codes(),
            "",
        ]
    )
    return "\n".join(out)
