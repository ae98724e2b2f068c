"""What the log filters mask besides the defaults: every plugin's ``register_redactions`` answer.

``create_app`` installs the filters with them and ``netrun-ws check`` asks for them, so a plugin
that fails here is reported by both, as one line naming it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netrun_ws.plugins.hooks import HookError
from netrun_ws.plugins.loading import PluginLoadError, describe_exception
from netrun_ws.redact import Redactions

if TYPE_CHECKING:
    from netrun_ws.host import Host

HOOK = "register_redactions"


def plugin_redactions(host: Host) -> list[Redactions]:
    """Every plugin's answer. Raises PluginLoadError naming a plugin whose implementation raises
    or answers anything but a Redactions (or None)."""
    try:
        answers = host.hooks.call_sync_by_plugin(HOOK, host=host)
    except HookError as error:
        raise _failed(host, error.plugin, describe_exception(error.error)) from error
    for plugin, answer in answers:
        if not isinstance(answer, Redactions):
            raise _failed(host, plugin, f"returned {type(answer).__name__}, not Redactions")
    return [answer for _, answer in answers]


def _failed(host: Host, pm_name: str, cause: str) -> PluginLoadError:
    plugin = host.plugins[pm_name]
    return PluginLoadError(plugin.name, plugin.origin, f"failed in {HOOK}: {cause}")
