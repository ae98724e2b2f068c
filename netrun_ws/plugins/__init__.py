"""The plugin machinery: finding plugins, the slot table, registering them, calling their hooks.

Public for plugin tooling: :data:`SLOTS` (every slot of ``netrun_ws.yaml``, from the slot table in
:mod:`netrun_ws.config.slot_table`), the loading errors and
:class:`~netrun_ws.plugins.hooks.HookError`. Plugins themselves need only ``netrun_ws``
(``hookimpl``) and the host API.
"""

from __future__ import annotations

from netrun_ws.config.slot_table import SLOTS, Slot
from netrun_ws.plugins.hooks import DROP, HookError, Hooks
from netrun_ws.plugins.loading import (
    ENTRY_POINT_GROUP,
    LoadedPlugin,
    PluginLoadError,
    PluginOrigin,
    UnknownPluginError,
    describe_exception,
)

__all__ = [
    "DROP",
    "ENTRY_POINT_GROUP",
    "SLOTS",
    "HookError",
    "Hooks",
    "LoadedPlugin",
    "PluginLoadError",
    "PluginOrigin",
    "Slot",
    "UnknownPluginError",
    "describe_exception",
]
