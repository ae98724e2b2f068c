"""From config slots to plugins: resolve each slot's plugin and validate its options.

Used by the Host at start-up and, when the rest of a config is invalid, to report unknown plugins
and bad plugin options in the same run as the other mistakes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from netrun_ws.config import Config, ConfigError, ConfigIssue, LoadedConfig, SlotConfig
from netrun_ws.config.slot_table import SLOTS
from netrun_ws.plugins.loading import (
    LoadedPlugin,
    PluginLoadError,
    UnknownPluginError,
    known_names,
    resolve,
)


@dataclass(frozen=True, slots=True)
class SlotEntry:
    """One plugin named by the config: its slot (None for app plugins) and where it was written."""

    slot: str | None
    key_path: str
    name: str
    options: dict[str, Any]

    @property
    def registered_name(self) -> str:
        """A unique name to register its plugin under: the key path for a slot (``auth``,
        ``metrics.0``), the plugin's own name for an app plugin."""
        return self.name if self.slot is None else self.key_path


@dataclass(frozen=True, slots=True)
class ResolvedPlugin:
    entry: SlotEntry
    plugin: LoadedPlugin
    options: BaseModel | None

    def target_class(self) -> type | None:
        """The module's ``Plugin`` class, instantiated once per app, if it defines one."""
        plugin_class = getattr(self.plugin.module, "Plugin", None)
        return plugin_class if isinstance(plugin_class, type) else None


def slot_entries(config: Config) -> list[SlotEntry]:
    """Every plugin the config names, in registration order: the slot table's order."""
    entries = []
    for slot in SLOTS:
        entry_slot = None if slot.app else slot.name
        value: SlotConfig | list[SlotConfig] | None = getattr(config, slot.name)
        if isinstance(value, list):
            entries += [
                SlotEntry(entry_slot, f"{slot.name}.{index}", item.plugin, item.options)
                for index, item in enumerate(value)
            ]
        elif value is not None:
            entries.append(SlotEntry(entry_slot, slot.name, value.plugin, value.options))
    return entries


def options_model(plugin: LoadedPlugin) -> type[BaseModel] | None:
    """The plugin's ``Options`` model: on its ``Plugin`` class or at module level."""
    plugin_class = getattr(plugin.module, "Plugin", None)
    model = getattr(plugin_class, "Options", None) or getattr(plugin.module, "Options", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def resolve_entry(
    loaded: LoadedConfig, entry: SlotEntry, issues: list[ConfigIssue]
) -> ResolvedPlugin | None:
    """Import the entry's plugin and validate its options; config mistakes go to ``issues``.

    Raises ``PluginLoadError`` when the plugin exists but fails to import.
    """
    plugins_dir = loaded.plugins_dir
    try:
        plugin = resolve(entry.name, slot=entry.slot, plugins_dir=plugins_dir)
    except UnknownPluginError:
        known = known_names(entry.slot, plugins_dir)
        hint = difflib.get_close_matches(entry.name, known, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        where = f" for slot {entry.slot!r}" if entry.slot else ""
        listing = f" (known: {', '.join(known)})" if known else ""
        message = f"unknown plugin {entry.name!r}{where}{suggestion}{listing}"
        issues.append(loaded.issue(f"{entry.key_path}.plugin", message))
        return None
    model = options_model(plugin)
    validated: BaseModel | None = None
    if model is not None:
        try:
            validated = loaded.validate_options(entry.key_path, model, entry.options)
        except ConfigError as error:
            issues.extend(error.issues)
            return None
    elif entry.options:
        keys = ", ".join(sorted(entry.options))
        issues.append(
            loaded.issue(entry.key_path, f"plugin {entry.name!r} takes no options ({keys})")
        )
        return None
    return ResolvedPlugin(entry, plugin, validated)


def plugin_config_issues(loaded: LoadedConfig) -> list[ConfigIssue]:
    """Unknown plugins and bad plugin options of ``loaded`` (import failures are left for later)."""
    issues: list[ConfigIssue] = []
    for entry in slot_entries(loaded.config):
        try:
            resolve_entry(loaded, entry, issues)
        except PluginLoadError:
            continue
    return issues
