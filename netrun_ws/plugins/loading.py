"""Finding and importing plugins: built-ins, entry points, the plugins folder, dotted module paths.

A config names a plugin by name or module path. For a slot (``auth``, ``store``, ...) a name is
looked up in this order: the slot's built-ins, the ``netrun_ws`` entry point group, a file or
package in ``plugins_dir``, then a dotted module path. Import failures become one-line
``PluginLoadError``s naming the plugin, where it came from and the cause (with file:line).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from netrun_ws.config.slot_table import SLOTS

ENTRY_POINT_GROUP = "netrun_ws"

#: Built-in plugins per slot (slots that have any): name -> module, from the slot table. They use
#: only the public hookspecs.
BUILTINS: dict[str, dict[str, str]] = {
    slot.name: dict(slot.builtins) for slot in SLOTS if slot.builtins
}

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True, slots=True)
class PluginOrigin:
    """Where a plugin came from, for messages and ``netrun-ws plugins``."""

    kind: str  # "built-in" | "entry point" | "file" | "module"
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.detail}"


@dataclass(frozen=True, slots=True)
class LoadedPlugin:
    name: str
    module: Any
    origin: PluginOrigin


class UnknownPluginError(LookupError):
    """No built-in, entry point, file or module has that name (a config mistake)."""


class PluginLoadError(Exception):
    """A plugin was found but is unusable; ``str()`` is one line: plugin, origin, cause."""

    def __init__(self, plugin: str, origin: PluginOrigin | str, cause: str) -> None:
        super().__init__(f"plugin {plugin!r} ({origin}): {cause}")
        self.plugin = plugin
        self.origin = origin
        self.cause = cause


def describe_exception(exc: BaseException) -> str:
    """One line: exception type, message and the innermost file:line (no traceback)."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} ({exc.filename}:{exc.lineno})"
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = f" ({last.filename}:{last.lineno})"
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}{where}" if message else f"{type(exc).__name__}{where}"


def entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Entry points of the ``netrun_ws`` group, by name."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _entry_point_origin(ep: importlib.metadata.EntryPoint) -> PluginOrigin:
    dist = ep.dist
    where = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
    return PluginOrigin("entry point", f"{ep.name} = {ep.value} from {where}")


def _local_path(plugins_dir: Path | None, name: str) -> Path | None:
    if plugins_dir is None or not _DOTTED.match(name) or "." in name:
        return None
    as_file = plugins_dir / f"{name}.py"
    if as_file.is_file():
        return as_file
    as_package = plugins_dir / name / "__init__.py"
    if as_package.is_file():
        return as_package
    return None


def _import_file(name: str, path: Path) -> ModuleType:
    module_name = f"netrun_ws_local_plugins.{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    search = [str(path.parent)] if path.name == "__init__.py" else None
    spec = importlib.util.spec_from_file_location(
        module_name, path, submodule_search_locations=search
    )
    if spec is None or spec.loader is None:  # pragma: no cover - only for non-.py paths
        raise ImportError(f"cannot load {path}")
    parent = sys.modules.setdefault(
        "netrun_ws_local_plugins", ModuleType("netrun_ws_local_plugins")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # before exec: pydantic and dataclasses look the module up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    setattr(parent, name, module)
    return module


def _import_module(plugin: str, module_path: str, origin: PluginOrigin) -> ModuleType:
    try:
        return importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        # Tell "the module does not exist" from "it exists but imports something missing".
        if exc.name is not None and (
            module_path == exc.name or module_path.startswith(exc.name + ".")
        ):
            raise UnknownPluginError(plugin) from exc
        raise PluginLoadError(
            plugin, origin, f"failed while importing: {describe_exception(exc)}"
        ) from exc
    except Exception as exc:
        raise PluginLoadError(
            plugin, origin, f"failed while importing: {describe_exception(exc)}"
        ) from exc


def resolve(name: str, *, slot: str | None, plugins_dir: Path | None) -> LoadedPlugin:
    """Find and import the plugin ``name`` for ``slot`` (None for app plugins).

    Raises ``UnknownPluginError`` when nothing has that name and ``PluginLoadError`` when it was
    found but failed to import.
    """
    builtin = BUILTINS.get(slot or "", {}).get(name)
    if builtin is not None:
        origin = PluginOrigin("built-in", builtin)
        return LoadedPlugin(name, _import_module(name, builtin, origin), origin)

    ep = entry_points().get(name)
    if ep is not None:
        origin = _entry_point_origin(ep)
        try:
            return LoadedPlugin(name, ep.load(), origin)
        except Exception as exc:
            cause = f"failed while importing: {describe_exception(exc)}"
            raise PluginLoadError(name, origin, cause) from exc

    path = _local_path(plugins_dir, name)
    if path is not None:
        origin = PluginOrigin("file", str(path))
        try:
            return LoadedPlugin(name, _import_file(name, path), origin)
        except Exception as exc:
            cause = f"failed while importing: {describe_exception(exc)}"
            raise PluginLoadError(name, origin, cause) from exc

    if _DOTTED.match(name) and "." in name:
        origin = PluginOrigin("module", name)
        return LoadedPlugin(name, _import_module(name, name, origin), origin)

    raise UnknownPluginError(name)


def known_names(slot: str | None, plugins_dir: Path | None) -> list[str]:
    """Names a config could use in ``slot``: for suggestions in error messages."""
    names = set(BUILTINS.get(slot or "", {}))
    names.update(entry_points())
    if plugins_dir is not None and plugins_dir.is_dir():
        for child in plugins_dir.iterdir():
            if child.suffix == ".py" and child.stem != "__init__":
                names.add(child.stem)
            elif (child / "__init__.py").is_file():
                names.add(child.name)
    return sorted(names)


@dataclass(frozen=True, slots=True)
class DiscoveredPlugin:
    """One row of ``netrun-ws plugins``."""

    name: str
    slot: str | None
    origin: PluginOrigin
    hooks: tuple[str, ...]
    error: str | None = None
    #: ``pip install 'netrun-ws[extra]'`` when the plugin needs an extra that is not installed.
    needs: str | None = None
    #: Hooks likely misspelled or missing ``@hookimpl`` (``netrun_ws.plugins.lint``).
    warnings: tuple[str, ...] = ()


def discover(plugins_dir: Path | None) -> list[DiscoveredPlugin]:
    """Every plugin that could be configured, imported to list the hooks it implements."""
    from netrun_ws.extras import install_hint
    from netrun_ws.hookspecs import PROJECT_NAME, all_hook_names
    from netrun_ws.plugins.lint import lint_plugin

    hook_names = all_hook_names()

    def hooks_of(module: Any) -> tuple[str, ...]:
        plugin_class = getattr(module, "Plugin", None)
        target = plugin_class if isinstance(plugin_class, type) else module
        marker = f"{PROJECT_NAME}_impl"
        return tuple(sorted(a for a in dir(target) if hasattr(getattr(target, a, None), marker)))

    found: list[DiscoveredPlugin] = []

    def add(name: str, slot: str | None, load: Any, origin: PluginOrigin) -> None:
        try:
            module = load()
        except Exception as exc:
            error = describe_exception(exc)
            found.append(DiscoveredPlugin(name, slot, origin, (), error, install_hint(exc)))
            return
        warnings = tuple(lint_plugin(module, hook_names, check_unknown=True))
        found.append(DiscoveredPlugin(name, slot, origin, hooks_of(module), warnings=warnings))

    for slot, plugins in BUILTINS.items():
        for name, module_path in plugins.items():
            origin = PluginOrigin("built-in", module_path)
            add(name, slot, lambda m=module_path: importlib.import_module(m), origin)
    for name, ep in sorted(entry_points().items()):
        add(name, None, ep.load, _entry_point_origin(ep))
    if plugins_dir is not None and plugins_dir.is_dir():
        for child in sorted(plugins_dir.iterdir()):
            name = child.stem if child.suffix == ".py" else child.name
            path = _local_path(plugins_dir, name)
            if path is None or name == "__init__":
                continue
            add(
                name,
                None,
                lambda n=name, p=path: _import_file(n, p),
                PluginOrigin("file", str(path)),
            )
    return found
