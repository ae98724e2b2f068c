"""The benchmark's netrun-ws app plugin: a registered echo type and a publish type.

``echo`` is validated against its model and the model itself is returned as the reply (so it is
serialised by the host, as an app's reply would be). ``publish`` is validated and broadcast to
every other connection through the store, as an app's fan-out would be.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from netrun_ws import hookimpl
from netrun_ws.connection import Connection
from netrun_ws.host import Host


class Echo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["echo"]
    seq: int
    t: int
    payload: str


class Publish(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["publish"]
    seq: int
    t: int
    payload: str


class Plugin:
    @hookimpl
    def register_message_types(self) -> list[type[BaseModel]]:
        return [Echo, Publish]

    @hookimpl
    async def on_message(
        self, host: Host, connection: Connection, message: BaseModel
    ) -> Echo | None:
        if isinstance(message, Echo):
            return message
        if isinstance(message, Publish):
            await host.broadcast(message, exclude_users=(connection.user_id,))
        return None
