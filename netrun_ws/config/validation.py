"""Turn pydantic validation errors into located, readable config issues.

Never a raw pydantic dump: each error becomes one ``file:line key.path: message`` line, unknown
keys suggest the closest known key, and values under secret-looking keys are never echoed.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from netrun_ws.config.errors import ConfigIssue
from netrun_ws.config.locations import KeyPath, SourceMap
from netrun_ws.config.models import SlotConfig
from netrun_ws.config.secrets import is_secret_key, mask_url

_SEQUENCE_ORIGINS = (list, tuple, set, frozenset, Sequence, Collection, Iterable)
_MAPPING_ORIGINS = (dict, Mapping)
_PREFIXES_TO_DROP = ("Value error, ", "Assertion failed, ")
_MAX_SHOWN = 60
# Our own error types whose message already shows the offending value.
_NAMES_ITS_INPUT = frozenset({"slot_type", "origin"})


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to the one type that matters, if there is one."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin is typing.Union or origin is types.UnionType:
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return None
            annotation = members[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def field_keys(model: type[BaseModel]) -> list[str]:
    """The keys a model accepts in input: each field's alias if it has one, else its name."""
    keys = []
    for name, info in model.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
        keys.append(alias or name)
    return keys


def model_at(root: type[BaseModel], path: KeyPath) -> type[BaseModel] | None:
    """The model that validates the mapping at ``path`` inside ``root``'s input, if any."""
    annotation: Any = root
    for part in path:
        annotation = _unwrap(annotation)
        origin = typing.get_origin(annotation)
        if isinstance(part, int) and origin in _SEQUENCE_ORIGINS:
            annotation = typing.get_args(annotation)[0]
        elif _is_model(annotation):
            fields = dict(zip(field_keys(annotation), annotation.model_fields, strict=True))
            name = fields.get(str(part))
            if name is None:
                return None
            annotation = annotation.model_fields[name].annotation
        elif origin in _MAPPING_ORIGINS:
            annotation = typing.get_args(annotation)[1]
        else:
            return None
    annotation = _unwrap(annotation)
    return annotation if _is_model(annotation) else None


def unknown_key_message(key: object, known: Sequence[str]) -> str:
    """``unknown key 'prot'; did you mean 'port'?`` (or the list of known keys)."""
    close = difflib.get_close_matches(str(key), known, n=1)
    if close:
        return f"unknown key '{key}'; did you mean '{close[0]}'?"
    return f"unknown key '{key}'; expected one of: {', '.join(known)}"


def unknown_keys(
    data: object, root: type[BaseModel], prefix: KeyPath = ()
) -> list[tuple[KeyPath, str]]:
    """Every key in ``data`` that ``root`` (or a nested model of it) does not define.

    A check of keys only, for data that is not validated (environments that were not chosen).
    Mappings without a model (plugin options inside a slot) are not checked.
    """
    found: list[tuple[KeyPath, str]] = []

    def walk(value: object, path: KeyPath) -> None:
        if isinstance(value, Mapping):
            model = model_at(root, path)
            # A slot's extra keys are its plugin's options, checked later by that plugin's model.
            known = None if model is None or model is SlotConfig else field_keys(model)
            for key, item in value.items():
                if known is not None and key not in known:
                    found.append(((*prefix, *path, key), unknown_key_message(key, known)))
                elif known is not None:
                    walk(item, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*path, index))

    walk(data, ())
    return found


def _shown(value: object) -> str | None:
    if isinstance(value, str):
        text = mask_url(value)
        return repr(text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "...")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def _message(error: ErrorDetails, root: type[BaseModel], path: KeyPath) -> str:
    kind = error["type"]
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        model = model_at(root, path[:-1])
        return unknown_key_message(path[-1], field_keys(model) if model is not None else [])
    message = error["msg"]
    for prefix in _PREFIXES_TO_DROP:
        message = message.removeprefix(prefix)
    message = message[:1].lower() + message[1:]
    secret = any(is_secret_key(part) for part in path)
    shown = None if secret or kind in _NAMES_ITS_INPUT else _shown(error.get("input"))
    return message if shown is None else f"{message} (got {shown})"


def issues_from_validation_error(
    error: ValidationError,
    root: type[BaseModel],
    sources: SourceMap,
    prefix: KeyPath = (),
    skip: Collection[KeyPath] = (),
) -> list[ConfigIssue]:
    """One located issue per pydantic error; errors at or below a ``skip`` path are dropped.

    ``prefix`` is where ``root``'s input sits in the config (e.g. ``("auth",)`` for a plugin's
    options); the message's path and line are the full path's.
    """
    issues: list[ConfigIssue] = []
    for details in error.errors(include_url=False):
        path: KeyPath = tuple(details["loc"])
        full = (*prefix, *path)
        if any(full[: len(skipped)] == skipped for skipped in skip):
            continue
        issues.append(sources.issue(full, _message(details, root, path)))
    return issues
