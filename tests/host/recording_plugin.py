"""A plugin implementing every hook, recording each call in ``host.state["events"]``.

Configured by dotted module path (``tests.host.recording_plugin``) in the host tests, which prove
the documented order of the lifecycle hooks and that every hookspec fires.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import pluggy
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route
from starlette.websockets import WebSocket

from netrun_ws import DROP, hookimpl
from netrun_ws.connection import Connection
from netrun_ws.handshake import Handshake
from netrun_ws.host import Host
from netrun_ws.identity import Identity, Rejection
from netrun_ws.protocol import ProtocolError
from netrun_ws.redact import Redactions
from netrun_ws.store import DeliveryGap, Store


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reject_user: str | None = None
    deny_room: str | None = None
    fail_on_text: str | None = None
    #: Extra welcome fields (a test tries to override the host's own keys with them).
    welcome: dict[str, Any] = {}


class Shout(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["shout"]
    text: str


class Plugin:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.options = Options()

    def _record(self, name: str, detail: Any = None) -> None:
        self.events.append((name, detail))

    @hookimpl
    def add_hookspecs(self, plugin_manager: pluggy.PluginManager) -> None:
        self._record("add_hookspecs")

    @hookimpl
    def configure(self, host: Host, options: Options) -> None:
        self.options = options
        host.state["events"] = self.events
        self._record("configure", options.model_dump())

    @hookimpl
    def register_message_types(self) -> list[type[BaseModel]]:
        self._record("register_message_types")
        return [Shout]

    @hookimpl
    def register_routes(self) -> list[BaseRoute]:
        self._record("register_routes")

        async def events(request: Request) -> PlainTextResponse:
            return PlainTextResponse(",".join(name for name, _ in self.events))

        return [Route("/recorded", events)]

    @hookimpl
    def register_redactions(self) -> Redactions:
        self._record("register_redactions")
        return Redactions(query_params=("recording_key",))

    @hookimpl(tryfirst=True)
    def provide_store(self) -> Store | None:
        self._record("provide_store")
        return None  # the store slot's plugin provides it; None lets it win

    @hookimpl
    async def startup(self) -> None:
        self._record("startup")

    @hookimpl
    async def shutdown(self) -> None:
        self._record("shutdown")

    @hookimpl
    def handshake(self, request: WebSocket) -> Rejection | None:
        self._record("handshake")
        reject = self.options.reject_user
        if reject is not None and request.query_params.get("user_id") == reject:
            return Rejection("rejected by recording plugin")
        return None

    @hookimpl(tryfirst=True)
    async def authenticate(self, request: WebSocket) -> Identity | None:
        self._record("authenticate")
        return None  # let the auth slot decide

    @hookimpl
    def verify_token(self, token: str) -> Identity | None:
        self._record("verify_token")
        if not token.startswith("good-"):
            return None
        # "good-<user>" never expires; "good-<user>@<seconds>" expires that many seconds from now.
        user, _, seconds = token[5:].partition("@")
        expires = time.time() + float(seconds) if seconds else 9e9
        return Identity(user_id=user, expires_at=expires)

    @hookimpl
    def on_user_revoked(self, user_id: str, reason: str) -> None:
        self._record("on_user_revoked", (user_id, reason))

    @hookimpl
    async def on_connect(self, connection: Connection) -> None:
        self._record("on_connect", connection.user_id)

    @hookimpl
    async def on_ready(self, connection: Connection) -> None:
        self._record("on_ready", connection.user_id)

    @hookimpl
    def on_auth_refused(self, handshake: Handshake, reason: str, status: int) -> None:
        self._record("on_auth_refused", (handshake.path, reason, status))

    @hookimpl
    def welcome_payload(self) -> dict[str, Any]:
        self._record("welcome_payload")
        return {"recorded": True, **self.options.welcome}

    @hookimpl
    def on_message_received(self, raw: str | bytes) -> None:
        self._record("on_message_received", raw)

    @hookimpl
    async def on_message(self, host: Host, connection: Connection, message: BaseModel) -> Any:
        self._record("on_message", message.model_dump(mode="json"))
        if isinstance(message, Shout):
            if message.text == self.options.fail_on_text:
                raise RuntimeError("recording plugin failed on purpose")
            if message.text == "join":
                return {"type": "joined", "ok": await host.join_room(connection, "r1")}
            if message.text == "deny":
                return {"type": "joined", "ok": await host.join_room(connection, "denied")}
            if message.text == "leave":
                return {"type": "left", "ok": await host.leave_room(connection, "r1")}
            return {"type": "shout", "text": message.text.upper()}
        return None

    @hookimpl
    def on_invalid_message(self, raw: str | bytes, error: ProtocolError) -> None:
        self._record("on_invalid_message", error.code)

    @hookimpl
    def before_send(self, message: Any) -> Any:
        self._record("before_send")
        if isinstance(message, dict) and message.get("text") == "SECRET":
            return DROP
        return None

    @hookimpl
    def after_send(self) -> None:
        self._record("after_send")

    @hookimpl
    def authorize_room(self, room: str) -> bool | None:
        self._record("authorize_room", room)
        return False if room == "denied" else None

    @hookimpl
    def on_room_join(self, room: str) -> None:
        self._record("on_room_join", room)

    @hookimpl
    def on_room_leave(self, room: str) -> None:
        self._record("on_room_leave", room)

    @hookimpl
    def on_heartbeat_missed(self, missed: int) -> None:
        self._record("on_heartbeat_missed", missed)

    @hookimpl
    def on_stale(self, connection: Connection) -> None:
        self._record("on_stale", connection.user_id)

    @hookimpl
    def on_delivery_gap(self, gap: DeliveryGap) -> None:
        self._record("on_delivery_gap", gap.reason)

    @hookimpl
    def on_error(self, error: BaseException) -> None:
        self._record("on_error", type(error).__name__)

    @hookimpl
    async def on_disconnect(self, connection: Connection, code: int) -> None:
        self._record("on_disconnect", code)
