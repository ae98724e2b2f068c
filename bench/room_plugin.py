"""The benchmark's room fan-out plugin (scenario 7, the cost of history).

Every connection joins the room ``bench`` when it connects; a ``publish`` message (the same
shape as ``bench/echo_plugin.py``'s) goes to that room through ``host.publish_room``, every
member but the sender: the path that gives room messages a position and keeps them in history
when ``history.rooms_enabled`` is on.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from netrun_ws import hookimpl
from netrun_ws.connection import Connection
from netrun_ws.host import Host

ROOM = "bench"


class Publish(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["publish"]
    seq: int
    t: int
    payload: str


class Plugin:
    @hookimpl
    def register_message_types(self) -> list[type[BaseModel]]:
        return [Publish]

    @hookimpl
    async def on_connect(self, host: Host, connection: Connection) -> None:
        await host.join_room(connection, ROOM)

    @hookimpl
    async def on_message(self, host: Host, connection: Connection, message: BaseModel) -> None:
        if isinstance(message, Publish):
            await host.publish_room(ROOM, message, exclude_connections=(connection.connection_id,))
