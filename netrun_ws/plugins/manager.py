"""``PluginSet``: the configured plugins, registered with pluggy and checked, for one host.

For each slot entry of the config (see :mod:`netrun_ws.plugins.slots`): find the plugin, validate
its options against its own ``Options`` model, instantiate its ``Plugin`` class if it has one
(per-app state), register it with pluggy. Then each plugin may add hookspecs, and pluggy's own
check refuses an implementation of a hook no spec names (with the closest name as a hint).
Every failure is one line naming the plugin and its origin.
"""

from __future__ import annotations

import difflib
from typing import Any

import pluggy
from pydantic import BaseModel

from netrun_ws import hookspecs
from netrun_ws.config import ConfigError, ConfigIssue, LoadedConfig
from netrun_ws.plugins.hooks import HookError, Hooks
from netrun_ws.plugins.loading import LoadedPlugin, PluginLoadError, describe_exception
from netrun_ws.plugins.relay import HookRelay
from netrun_ws.plugins.slots import ResolvedPlugin, resolve_entry, slot_entries

__all__ = ["PluginSet"]


class PluginSet:
    """One host's plugins: ``Host.plugin_manager``, ``plugins``, ``slots``, ``plugin_options``."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.plugin_manager.add_hookspecs(hookspecs)
        #: pluggy name -> where the plugin came from.
        self.plugins: dict[str, LoadedPlugin] = {}
        #: slot -> pluggy name of the plugin serving it ("metrics.N" for each sink).
        self.slots: dict[str, str] = {}
        #: pluggy name -> the plugin's validated options (None: it declares no ``Options``).
        self.options: dict[str, BaseModel | None] = {}
        issues: list[ConfigIssue] = []
        for entry in slot_entries(loaded.config):
            resolved = resolve_entry(loaded, entry, issues)
            if resolved is not None:
                self._register(resolved, issues)
        if issues:
            raise ConfigError(issues)
        self.hooks = Hooks(self.plugin_manager)

    def _register(self, resolved: ResolvedPlugin, issues: list[ConfigIssue]) -> None:
        entry, plugin = resolved.entry, resolved.plugin
        target: Any = plugin.module
        plugin_class = resolved.target_class()
        if plugin_class is not None:
            try:
                target = plugin_class()
            except Exception as exc:
                cause = f"failed to create Plugin(): {describe_exception(exc)}"
                raise PluginLoadError(entry.name, plugin.origin, cause) from exc
        pm_name = entry.registered_name
        if pm_name in self.plugins or self.plugin_manager.is_registered(target):
            issues.append(
                self.loaded.issue(entry.key_path, f"plugin {entry.name!r} is configured twice")
            )
            return
        try:
            self.plugin_manager.register(target, name=pm_name)
        except pluggy.PluginValidationError as exc:
            raise PluginLoadError(entry.name, plugin.origin, _one_line(exc)) from exc
        self.plugins[pm_name] = plugin
        self.options[pm_name] = resolved.options
        if entry.slot is not None:
            self.slots[entry.key_path] = pm_name

    def check(self, relay: HookRelay) -> None:
        """Let plugins add hookspecs, then refuse hooks nobody specified and hook wrappers."""
        try:
            relay.add_hookspecs(self.plugin_manager)
        except HookError as error:
            raise self.error(error) from error
        self.hooks.refresh()
        try:
            self.plugin_manager.check_pending()
        except pluggy.PluginValidationError as exc:
            raise self._unknown_hook(exc) from exc
        for hook_name in self.hooks.names:
            for impl in getattr(self.plugin_manager.hook, hook_name).get_hookimpls():
                if impl.hookwrapper or impl.wrapper:
                    # The dispatcher calls implementations directly: a wrapper would never run.
                    cause = f"hook wrappers are not supported ({hook_name})"
                    raise self._failure(impl.plugin, cause)

    def _unknown_hook(self, exc: pluggy.PluginValidationError) -> PluginLoadError:
        """pluggy's refusal, naming the hook and the closest real one."""
        known = self.hooks.names
        for caller in self.plugin_manager.get_hookcallers(exc.plugin) or ():
            if caller.spec is None:
                hint = difflib.get_close_matches(caller.name, known, n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
                cause = f"implements unknown hook {caller.name!r}{suggestion}"
                return self._failure(exc.plugin, cause)
        return self._failure(exc.plugin, _one_line(exc))

    def _failure(self, target: object, cause: str) -> PluginLoadError:
        return self.failed(self.plugin_manager.get_name(target) or "?", cause)

    def failed(self, pm_name: str, cause: str) -> PluginLoadError:
        """The one-line start-up error for the plugin registered as ``pm_name``."""
        loaded = self.plugins[pm_name]
        return PluginLoadError(loaded.name, loaded.origin, cause)

    def error(self, error: HookError) -> PluginLoadError:
        """A set-up or lifespan hook failure as the one-line start-up error naming the plugin."""
        loaded = self.plugins.get(error.plugin)
        name = loaded.name if loaded else error.plugin
        origin = loaded.origin if loaded else "unknown origin"
        cause = f"failed in {error.hook}: {describe_exception(error.error)}"
        return PluginLoadError(name, origin, cause)


def _one_line(exc: Exception) -> str:
    # pluggy's messages span lines (hook, definition, bad arguments): keep them on one.
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
