"""Example app plugin: chat rooms and direct messages.

Loaded by the default netrun_ws.yaml (``plugins: [chat]``). It shows the three things most app
plugins do: declare options, register message types, and handle messages through the host API.

Client -> server, and what the server sends:
- {"type": "join", "room": "lobby"}: sender gets {"type": "joined", "room", "members": [...]},
  the room gets {"type": "user_joined", "room", "user_id"}
- {"type": "leave", "room": "lobby"}: sender gets {"type": "left", "room"},
  the room gets {"type": "user_left", "room", "user_id"}
- {"type": "say", "room": "lobby", "text": "hi"}: the room gets {"type": "said", "room", "user_id",
  "text"}
- {"type": "direct", "to": "bob", "text": "psst"}: bob gets {"type": "direct", "from", "text"},
  the sender gets {"type": "ack", "delivered": N}

It also serves the chat page (chat.html, next to this file) at ``/``, built on the browser client
that the server serves at ``server.client_path`` (no page when that is null).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Route

from netrun_ws import ErrorCode, hookimpl
from netrun_ws.connection import Connection
from netrun_ws.host import Host
from netrun_ws.wire import error_reply

PAGE = Path(__file__).with_name("chat.html")
RoomName = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


def js_string(value: str) -> str:
    """A JavaScript string literal of ``value`` that cannot end the page's <script> element."""
    return json.dumps(value).replace("<", "\\u003c")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_rooms_per_connection: int = Field(20, gt=0, description="Rooms one connection may join.")


class Join(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["join"]
    room: str = RoomName


class Leave(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["leave"]
    room: str = RoomName


class Say(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["say"]
    room: str = RoomName
    text: str = Field(min_length=1, max_length=4000)


class Direct(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["direct"]
    to: str = Field(min_length=1, max_length=128)
    text: str = Field(min_length=1, max_length=4000)


class Plugin:
    def __init__(self) -> None:
        self.options = Options()

    @hookimpl
    def configure(self, options: Options) -> None:
        self.options = options

    @hookimpl
    def register_message_types(self) -> list[type[BaseModel]]:
        return [Join, Leave, Say, Direct]

    @hookimpl
    def register_routes(self, host: Host) -> list[BaseRoute]:
        server = host.config.server
        if server.client_path is None:
            return []
        client_module = server.client_path.rstrip("/") + "/netrun-ws.js"
        page = PAGE.read_text(encoding="utf-8")
        for name, value in (("client_module", client_module), ("ws_path", server.path)):
            page = page.replace("{{" + name + "}}", js_string(value))
        body = page.encode()

        async def chat_page(request: Request) -> HTMLResponse:
            return HTMLResponse(body, headers={"Cache-Control": "no-cache"})

        return [Route("/", chat_page, methods=["GET"])]

    @hookimpl
    def authorize_room(self, host: Host, connection: Connection, room: str) -> bool:
        return len(host.rooms_of(connection)) < self.options.max_rooms_per_connection

    @hookimpl
    async def on_room_join(self, host: Host, connection: Connection, room: str) -> None:
        event = {"type": "user_joined", "room": room, "user_id": connection.user_id}
        await host.publish_room(room, event, exclude_connections=[connection.connection_id])

    @hookimpl
    async def on_room_leave(self, host: Host, connection: Connection, room: str) -> None:
        await host.publish_room(
            room, {"type": "user_left", "room": room, "user_id": connection.user_id}
        )

    @hookimpl
    async def on_message(self, host: Host, connection: Connection, message: BaseModel) -> Any:
        if isinstance(message, Join):
            if not await host.join_room(connection, message.room):
                return error_reply(ErrorCode.FORBIDDEN, f"cannot join {message.room!r}")
            members = sorted(set((await host.store.room_members(message.room)).values()))
            return {"type": "joined", "room": message.room, "members": members}
        if isinstance(message, Leave):
            if not await host.leave_room(connection, message.room):
                return error_reply(ErrorCode.NOT_FOUND, f"not in room {message.room!r}")
            return {"type": "left", "room": message.room}
        if isinstance(message, Say):
            if message.room not in host.rooms_of(connection):
                reason = f"join {message.room!r} before saying anything"
                return error_reply(ErrorCode.FORBIDDEN, reason)
            said = {
                "type": "said",
                "room": message.room,
                "user_id": connection.user_id,
                "text": message.text,
            }
            await host.publish_room(message.room, said)
            return None
        if isinstance(message, Direct):
            event = {"type": "direct", "from": connection.user_id, "text": message.text}
            delivered = await host.send_to_user(message.to, event)
            return {"type": "ack", "delivered": delivered}
        return None
