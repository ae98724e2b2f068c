"""Handles ``whisper`` through ``handles(...)`` (no annotation), and a type nobody registers
through ``optional=True``; an untyped ``message`` would otherwise make it a catch-all."""

from __future__ import annotations

from typing import Any

from netrun_ws import Host, handles, hookimpl
from tests.host.routing.types_plugin import seen


@hookimpl
@handles("whisper", "nobody-registers-this", optional=True)
def on_message(host: Host, message: Any) -> dict[str, str]:
    seen(host).append(("named", message.type))
    return {"type": "whispered"}
