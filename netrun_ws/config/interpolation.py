"""``${VAR}`` / ``${VAR:-default}`` substitution in the string values of a config.

``$$`` writes a literal ``$``. ``${VAR:-default}`` uses the default when VAR is unset or empty
(as in POSIX shells); the default is literal text up to the first ``}`` (no nesting). A ``$``
followed by anything else is kept as is. Only values are substituted, never keys, and the result
is always a string: pydantic's lax mode then turns ``"8000"`` into 8000 for an int field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from netrun_ws.config.locations import KeyPath

_TOKEN = re.compile(r"\$\$|\$\{([^}]*)\}|\$\{")
_REFERENCE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


def interpolate_string(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """Substitute every reference in ``text``; returns the result and a message per mistake."""
    if "$" not in text:
        return text, []
    problems: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "$$":
            return "$"
        body = match.group(1)
        if body is None:
            problems.append("unterminated '${' (missing '}'; write '$$' for a literal '$')")
            return token
        reference = _REFERENCE.fullmatch(body)
        if reference is None:
            problems.append(
                f"invalid variable reference '{token}'; expected ${{NAME}} or ${{NAME:-default}}"
            )
            return token
        name, default = reference.group(1), reference.group(2)
        value = environ.get(name)
        if default is not None:
            return value if value else default
        if value is None:
            problems.append(
                f"environment variable '{name}' is not set "
                f"(set it, or give a default: ${{{name}:-default}})"
            )
            return token
        return value

    return _TOKEN.sub(substitute, text), problems


def interpolate_tree(
    data: Any, environ: Mapping[str, str], path: KeyPath = ()
) -> tuple[Any, list[tuple[KeyPath, str]]]:
    """A copy of ``data`` with every string value interpolated, and (path, message) mistakes."""
    problems: list[tuple[KeyPath, str]] = []
    if isinstance(data, str):
        result, messages = interpolate_string(data, environ)
        return result, [(path, message) for message in messages]
    if isinstance(data, Mapping):
        mapping: dict[Any, Any] = {}
        for key, value in data.items():
            mapping[key], found = interpolate_tree(value, environ, (*path, key))
            problems.extend(found)
        return mapping, problems
    if isinstance(data, list):
        items: list[Any] = []
        for index, value in enumerate(data):
            item, found = interpolate_tree(value, environ, (*path, index))
            items.append(item)
            problems.extend(found)
        return items, problems
    return data, problems
