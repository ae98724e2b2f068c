"""Handles ``say`` and ``shout`` by a union annotation; answers ``shout`` only (None for ``say``,
so the other handlers' replies still go out)."""

from __future__ import annotations

from netrun_ws import Host, hookimpl
from tests.host.routing.types_plugin import Say, Shout, seen


class Plugin:
    @hookimpl
    async def on_message(self, host: Host, message: Say | Shout) -> dict[str, str] | None:
        seen(host).append(("loud", message.type))
        if isinstance(message, Shout):
            return {"type": "shouted", "text": message.text.upper()}
        return None
