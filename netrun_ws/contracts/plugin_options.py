"""Every plugin a config could name, per slot, with its ``Options`` model: for ``netrun-ws schema``.

The same lookup as the loader (:mod:`netrun_ws.plugins.loading`): a slot's built-ins, entry points
(group ``netrun_ws``), files and packages in ``plugins_dir``. Entry-point and file plugins may be
named in any slot, so they are offered in every one. A plugin that fails to import is left out
with a one-line note, as ``netrun-ws plugins`` lists it with its error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel

from netrun_ws.config.slot_table import SLOTS
from netrun_ws.plugins.loading import (
    BUILTINS,
    PluginLoadError,
    UnknownPluginError,
    entry_points,
    known_names,
    resolve,
)
from netrun_ws.plugins.slots import options_model


def plugins_dir_of(config: Path) -> Path | None:
    """The plugins folder a config file names (default ``plugins`` beside it), if it exists.

    Read from the raw YAML, so that a config with other mistakes still gets its schema.
    """
    directory: object = "plugins"
    if config.is_file():
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            directory = data.get("plugins_dir", "plugins")
    if not isinstance(directory, str) or "${" in directory:
        return None
    path = (config.absolute().parent / directory).resolve()
    return path if path.is_dir() else None


@dataclass(frozen=True, slots=True)
class Found:
    """One plugin usable in a slot; ``options`` is None when it takes no options."""

    name: str
    options: type[BaseModel] | None


@dataclass(slots=True)
class PluginCatalog:
    """slot name -> the plugins found for it, in lookup order; ``notes`` for the ones left out."""

    slots: dict[str, list[Found]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def find_plugins(plugins_dir: Path | None, *, with_entry_points: bool = True) -> PluginCatalog:
    """Every plugin each slot could name, imported to read its options model."""
    catalog = PluginCatalog()
    shared: dict[str, Found | None] = {}  # non-built-ins resolve the same in every slot
    installed = set(entry_points())
    for slot in SLOTS:
        lookup_slot = None if slot.app else slot.name
        builtins = BUILTINS.get(slot.name, {})
        found: list[Found] = []
        for name in known_names(lookup_slot, plugins_dir):
            if name not in builtins and name in installed and not with_entry_points:
                continue
            if name in builtins:
                plugin = _load(name, lookup_slot, plugins_dir, catalog.notes)
            else:
                if name not in shared:
                    shared[name] = _load(name, None, plugins_dir, catalog.notes)
                plugin = shared[name]
            if plugin is not None:
                found.append(plugin)
        catalog.slots[slot.name] = found
    return catalog


def _load(name: str, slot: str | None, plugins_dir: Path | None, notes: list[str]) -> Found | None:
    try:
        loaded = resolve(name, slot=slot, plugins_dir=plugins_dir)
    except (PluginLoadError, UnknownPluginError) as error:
        notes.append(f"plugin {name!r} left out of the schema: {error}")
        return None
    return Found(name, options_model(loaded))
