"""A test app plugin: ``{"type": "echo", "seq": N, "text": ...}`` comes back as it was sent.

``Plugin.hold`` (an asyncio.Event, set by default) makes the handler wait before it replies, so a
test can keep the app busy while the client floods the socket.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import BaseModel

from netrun_ws import hookimpl


class Echo(BaseModel):
    type: Literal["echo"]
    seq: int
    text: str = ""


class Plugin:
    def __init__(self) -> None:
        self.hold = asyncio.Event()
        self.hold.set()

    @hookimpl
    def register_message_types(self) -> list[type[BaseModel]]:
        return [Echo]

    @hookimpl
    async def on_message(self, message: BaseModel) -> BaseModel | None:
        if not isinstance(message, Echo):
            return None
        await self.hold.wait()
        return message
