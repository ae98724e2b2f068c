"""A test plugin: ``{"type": "pump", "room", "n"}`` publishes ``{"type": "tick", "room", "n"}`` to
the room (the sender need not be in it), so one connection can feed many rooms at a high rate
without receiving what it publishes. With ``"ack": true`` it answers ``{"type": "pumped", "n"}``:
a connection's messages are handled in order, so that answer means every earlier pump is
published."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from netrun_ws import Connection, Host, hookimpl


class Pump(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["pump"]
    room: str
    n: int
    ack: bool = False


class Plugin:
    @hookimpl
    def register_message_types(self) -> list[type[BaseModel]]:
        return [Pump]

    @hookimpl
    async def on_message(self, host: Host, connection: Connection, message: BaseModel) -> Any:
        if isinstance(message, Pump):
            await host.publish_room(
                message.room, {"type": "tick", "room": message.room, "n": message.n}
            )
            return {"type": "pumped", "n": message.n} if message.ack else None
        return None
