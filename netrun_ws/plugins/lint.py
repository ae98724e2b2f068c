"""Mistakes that leave a plugin silently doing nothing, found without running it: a function
named like a hook but not marked ``@hookimpl`` (pluggy ignores it), and a marked function whose
name is no hook (a misspelling; the host refuses it at start-up, ``netrun-ws plugins`` says so
before). Used by ``netrun-ws check`` and ``netrun-ws plugins``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from netrun_ws.hookspecs import PROJECT_NAME

__all__ = ["lint_plugin"]

_IMPL_MARKER = f"{PROJECT_NAME}_impl"


def _functions(plugin: Any) -> Iterable[tuple[str, Any]]:
    """The plugin's own callables by name: a ``Plugin`` class's methods, else the module's."""
    plugin_class = getattr(plugin, "Plugin", None)
    target = plugin_class if isinstance(plugin_class, type) else plugin
    for name in dir(target):
        if name.startswith("_"):
            continue
        value = getattr(target, name, None)
        if callable(value) and not isinstance(value, type):
            yield name, value


def lint_plugin(plugin: Any, hooks: Iterable[str], *, check_unknown: bool) -> list[str]:
    """One line per mistake in ``plugin`` (a module or object) given the known ``hooks``.

    ``check_unknown``: also flag marked functions that are no known hook (off where the host has
    already refused those, with its own message).
    """
    known = set(hooks)
    problems: list[str] = []
    for name, value in _functions(plugin):
        marked = hasattr(value, _IMPL_MARKER)
        if name in known and not marked:
            problems.append(
                f"{name}() is named like a hook but has no @hookimpl: it is never called"
            )
        elif marked and name not in known and check_unknown:
            hint = difflib.get_close_matches(name, sorted(known), n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            problems.append(
                f"{name}() is marked @hookimpl but no hook has that name{suggestion} "
                "(start-up refuses it unless a plugin adds that hook with add_hookspecs)"
            )
    return problems
