"""``netrun-ws schema``: the JSON Schema (draft 2020-12) of ``netrun_ws.yaml``, for editors and CI.

Built from the config models (``server``, ``limits``, ``plugins_dir``), the slot table, and the
``Options`` model of every plugin found (:mod:`netrun_ws.contracts.plugin_options`). Each slot is a
plugin name, or a mapping whose ``plugin`` key chooses which plugin's options the other keys are
checked against (a plugin the schema does not know, a module path say, accepts any keys).
``environments`` overlays are partial configs: a slot there may omit ``plugin`` to change options of
the plugin it already has. Wherever YAML could hold a string, ``${VAR}`` is accepted too (the
loader substitutes it before validating), so ``port: ${PORT:-8000}`` is valid.

What the schema cannot know (whether a variable is set, whether a module path imports, a plugin's
own validators) is ``netrun-ws check``'s job.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from netrun_ws.config.models import ConfigFile
from netrun_ws.config.slot_table import SLOTS, Slot
from netrun_ws.contracts.catalog import model_schemas
from netrun_ws.contracts.plugin_options import Found, PluginCatalog

DIALECT = "https://json-schema.org/draft/2020-12/schema"
REF = "#/$defs/"
INTERPOLATED = "Interpolated"
_INTERPOLATED_SCHEMA = {
    "type": "string",
    "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
    "description": "${VAR} or ${VAR:-default}: substituted from the environment when loading.",
}
_CONSTRAINED_STRING = ("pattern", "maxLength", "format")
_ANNOTATIONS = ("title", "description", "default", "examples")


def interpolable(schema: Any) -> Any:
    """``schema`` where every non-string value may also be written as a ``${VAR}`` string."""
    if not isinstance(schema, dict) or "$ref" in schema:
        return schema
    out = {key: value for key, value in schema.items()}
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if key in out:
            out[key] = [interpolable(member) for member in out[key]]
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: interpolable(s) for name, s in out["properties"].items()}
    for key in ("additionalProperties", "items"):
        if isinstance(out.get(key), dict):
            out[key] = interpolable(out[key])
    if any(key in out for key in ("anyOf", "oneOf", "allOf", "properties")):
        return out
    kind = out.get("type")
    constrained = kind == "string" and any(key in out for key in _CONSTRAINED_STRING)
    if kind in ("integer", "number", "boolean") or "enum" in out or "const" in out or constrained:
        outer = {key: out.pop(key) for key in _ANNOTATIONS if key in out}
        return {**outer, "anyOf": [out, {"$ref": REF + INTERPOLATED}]}
    return out


def _models_defs(
    models: list[type[BaseModel]],
) -> tuple[dict[type[BaseModel], str], dict[str, Any]]:
    """The options models' schemas, made interpolable."""
    names, defs = model_schemas(models, REF)
    return names, {name: interpolable(schema) for name, schema in defs.items()}


def _variant(
    slot: Slot, plugin: Found, names: dict[type[BaseModel], str], defs: dict[str, Any]
) -> Any:
    properties: dict[str, Any] = {"plugin": {"const": plugin.name}}
    variant: dict[str, Any] = {"type": "object", "title": f"{slot.name}: {plugin.name}"}
    if plugin.options is None:
        variant.update(properties=properties, required=["plugin"], additionalProperties=False)
        variant["description"] = "Takes no options."
        return variant
    options = defs[names[plugin.options]]
    properties["options"] = {
        "$ref": REF + names[plugin.options],
        "description": "The options as one mapping (they may also be written beside 'plugin').",
    }
    properties.update(copy.deepcopy(options.get("properties", {})))
    variant.update(
        properties=properties,
        required=["plugin"],
        additionalProperties=options.get("additionalProperties", True),
    )
    if options.get("description"):
        variant["description"] = options["description"]
    required = [name for name in options.get("required", ()) if name != "plugin"]
    if required:
        variant["anyOf"] = [{"required": required}, {"required": ["options"]}]
    return variant


def _slot_def(
    slot: Slot, found: list[Found], names: dict[type[BaseModel], str], defs: dict[str, Any]
) -> Any:
    known = [plugin.name for plugin in found]
    plugin_name: dict[str, Any] = {"type": "string", "minLength": 1}
    unknown = {
        "type": "object",
        "title": f"{slot.name}: another plugin",
        "description": "A plugin this schema did not find (a module path, say): any options.",
        "properties": {"plugin": {**plugin_name, "not": {"enum": known}} if known else plugin_name},
        "required": ["plugin"],
    }
    return {
        "description": f"{slot.description} A plugin name, or a mapping: 'plugin' and its options.",
        "anyOf": [
            {"enum": known, "description": "A plugin found when the schema was made."}
            if known
            else {"type": "string", "minLength": 1},
            {**plugin_name, "description": "Any plugin name or module path."},
            {"oneOf": [*(_variant(slot, p, names, defs) for p in found), unknown]},
        ],
    }


def _slot_property(slot: Slot, *, overlay: bool) -> Any:
    one: Any = {"$ref": f"{REF}slot_{slot.name}"}
    if overlay and not slot.many:
        partial = {
            "type": "object",
            "not": {"required": ["plugin"]},
            "description": "Options changed for the plugin the slot already has.",
        }
        one = {"anyOf": [one, partial]}
    schema: dict[str, Any] = {"description": slot.description}
    if slot.many:
        schema["anyOf"] = [{"type": "array", "items": one}, one, {"type": "null"}]
    elif slot.nullable:
        schema["anyOf"] = [one, {"type": "null"}]
    else:
        schema.update(one)
    return schema


def config_schema(plugins: PluginCatalog) -> dict[str, Any]:
    """The JSON Schema of ``netrun_ws.yaml`` with the options of the plugins in ``plugins``."""
    base = ConfigFile.model_json_schema()
    base_defs = base.pop("$defs")
    option_models = list(
        dict.fromkeys(p.options for found in plugins.slots.values() for p in found if p.options)
    )
    names, defs = _models_defs(option_models)
    defs[INTERPOLATED] = _INTERPOLATED_SCHEMA
    for section in ("ServerConfig", "LimitsConfig"):
        defs[section] = interpolable(base_defs[section])
    sections: dict[str, Any] = {}
    for key in ("server", "limits"):
        field = base["properties"][key]
        sections[key] = {
            "description": field["description"],
            "anyOf": [{"$ref": field["$ref"]}, {"type": "null"}],
        }
    sections["plugins_dir"] = base["properties"]["plugins_dir"]
    for slot in SLOTS:
        defs[f"slot_{slot.name}"] = _slot_def(slot, plugins.slots.get(slot.name, []), names, defs)

    def top_level(*, overlay: bool) -> dict[str, Any]:
        properties = dict(sections)
        for slot in SLOTS:
            properties[slot.name] = _slot_property(slot, overlay=overlay)
        return properties

    properties = top_level(overlay=False)
    environments = base["properties"]["environments"]
    properties["environments"] = {
        "description": environments["description"],
        "anyOf": [
            {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "description": "One overlay: any top-level keys but 'environments'.",
                    "properties": top_level(overlay=True),
                    "additionalProperties": False,
                },
            },
            {"type": "null"},
        ],
    }
    return {
        "$schema": DIALECT,
        "title": "netrun_ws.yaml",
        "description": "netrun-ws configuration (docs/configuration.md). Generated by "
        "`netrun-ws schema`.",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "$defs": dict(sorted(defs.items())),
    }
