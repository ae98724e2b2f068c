"""Handles ``say`` by its annotation (a plain model) and answers it."""

from __future__ import annotations

from netrun_ws import Host, hookimpl
from tests.host.routing.types_plugin import Say, seen


@hookimpl
def on_message(host: Host, message: Say) -> dict[str, str]:
    seen(host).append(("say", message.type))
    return {"type": "said", "by": "say_plugin", "text": message.text}
