"""A plugin that sends from ``on_connect`` and ``on_ready`` and answers with what it reads from
``connection.handshake`` and ``connection.identity``: proves the welcome comes first."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from netrun_ws import hookimpl
from netrun_ws.connection import Connection
from netrun_ws.host import Host


class WhoAmI(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["whoami"]


@hookimpl
def register_message_types() -> list[type[BaseModel]]:
    return [WhoAmI]


@hookimpl
async def on_connect(host: Host, connection: Connection) -> None:
    await host.send(connection, {"type": "early", "n": 1})
    await host.send(connection, {"type": "early", "n": 2})
    await host.broadcast({"type": "arrived", "user_id": connection.user_id})


@hookimpl
async def on_ready(host: Host, connection: Connection) -> None:
    await host.send(connection, {"type": "ready"})


@hookimpl
def on_message(connection: Connection, message: BaseModel) -> Any:
    if not isinstance(message, WhoAmI):
        return None
    handshake = connection.handshake
    identity = connection.identity
    assert identity is connection.metadata["identity"]  # the compatible view is the same object
    return {
        "type": "you",
        "path": handshake.path,
        "query": dict(handshake.query_params),
        "header": handshake.headers.get("x-test"),
        "client_host": handshake.client_host,
        "client_port_is_int": isinstance(handshake.client_port, int),
        "subprotocol": handshake.subprotocol,
        "user_id": identity.user_id if identity else None,
    }
