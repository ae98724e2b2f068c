"""``HookRelay``: one typed method per hook of :mod:`netrun_ws.hookspecs` (``host.fire``).

The host and the built-in plugins fire hooks only through these methods, so a misspelled hook is
a type error, each hook's calling rule (every implementation, first result, a chain, or isolated
so that one failing plugin cannot skip another's cleanup) is written down once, here, and the
``host`` argument is filled in. ``tests/test_hook_relay.py`` checks that every spec has exactly one
method here taking the spec's arguments. Hooks that plugins add are fired by name through
:class:`~netrun_ws.plugins.hooks.Hooks` (``host.hooks``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

from netrun_ws.plugins.hooks import HookError, Hooks, run_first, run_plan

if TYPE_CHECKING:
    from pydantic import BaseModel
    from starlette.routing import BaseRoute
    from starlette.websockets import WebSocket

    from netrun_ws.connection import Connection
    from netrun_ws.handshake import Handshake
    from netrun_ws.host import Host
    from netrun_ws.protocol import ProtocolError
    from netrun_ws.store import DeliveryGap, Store

__all__ = ["HookRelay"]

# (hook, argument names): the keys of the per-connection hooks' plans in Hooks' table.
_HANDSHAKE = ("handshake", ("host", "request"))
_AUTHENTICATE = ("authenticate", ("host", "request"))
_ON_CONNECT = ("on_connect", ("host", "connection"))
_ON_READY = ("on_ready", ("host", "connection"))
_WELCOME_PAYLOAD = ("welcome_payload", ("host", "connection"))


class HookRelay:
    """Fires the built-in hooks for one host. Failures raise
    :class:`~netrun_ws.plugins.hooks.HookError` unless the method says they are isolated."""

    def __init__(self, hooks: Hooks, host: Host) -> None:
        self._hooks = hooks
        self._host = host

    def has(self, hook: str) -> bool:
        """True when a plugin implements ``hook`` (UnknownHookError for a name with no spec)."""
        return self._hooks.has(hook)

    # ----------------------------------------------------------------- set-up (synchronous)

    def add_hookspecs(self, plugin_manager: pluggy.PluginManager) -> None:
        self._hooks.call_sync("add_hookspecs", ("plugin_manager",), lambda _: (plugin_manager,))

    def configure(self, options: Mapping[str, BaseModel | None]) -> None:
        """Each implementing plugin gets its own options (``options[plugin name]``)."""
        host = self._host
        self._hooks.call_sync(
            "configure", ("host", "options"), lambda plugin: (host, options.get(plugin))
        )

    def register_message_types(self) -> list[tuple[str, list[type[BaseModel]]]]:
        """(plugin name, models) for each plugin returning some."""
        return self._hooks.call_sync("register_message_types", ("host",), self._host_only)

    def register_routes(self) -> list[BaseRoute]:
        pairs = self._hooks.call_sync("register_routes", ("host",), self._host_only)
        return [route for _, routes in pairs for route in routes]

    def register_redactions(self) -> list[tuple[str, Any]]:
        """(plugin name, answer) for each plugin answering; the host checks each is Redactions."""
        return self._hooks.call_sync("register_redactions", ("host",), self._host_only)

    def _host_only(self, plugin: str) -> tuple[Any, ...]:
        return (self._host,)

    # ----------------------------------------------------------------- lifespan

    async def provide_store(self) -> Store | None:
        store: Store | None = await self._hooks.first("provide_store", host=self._host)
        return store

    async def startup(self) -> None:
        await self._hooks.call("startup", host=self._host)

    async def shutdown(self) -> list[HookError]:
        """Isolated: every implementation runs."""
        return await self._hooks.call_isolated("shutdown", host=self._host)

    # ----------------------------------------------------------------- admission

    # The per-connection hooks below return the coroutine running the hook's plan rather than
    # awaiting it in a coroutine of their own. They take the plan made before from Hooks' own
    # table (as Hooks.call does) under a constant key and run it: no Hooks.call/first coroutine,
    # keyword dict or key tuples, about 4,000 instructions per hook call, five per connection.

    def handshake(self, request: WebSocket) -> Awaitable[Any]:
        plan = self._hooks._plans.get(_HANDSHAKE)
        if plan is None:
            plan = self._hooks.plan(*_HANDSHAKE)
        return run_first(plan, "handshake", (self._host, request))

    def authenticate(self, request: WebSocket) -> Awaitable[Any]:
        plan = self._hooks._plans.get(_AUTHENTICATE)
        if plan is None:
            plan = self._hooks.plan(*_AUTHENTICATE)
        return run_first(plan, "authenticate", (self._host, request))

    async def on_auth_refused(self, handshake: Handshake, reason: str, status: int) -> None:
        """Isolated."""
        await self._hooks.call_isolated(
            "on_auth_refused", host=self._host, handshake=handshake, reason=reason, status=status
        )

    async def verify_token(self, token: str) -> Any:
        return await self._hooks.first("verify_token", host=self._host, token=token)

    # ----------------------------------------------------------------- per connection

    def on_connect(self, connection: Connection) -> Awaitable[list[Any]]:
        plan = self._hooks._plans.get(_ON_CONNECT)
        if plan is None:
            plan = self._hooks.plan(*_ON_CONNECT)
        return run_plan(plan, "on_connect", (self._host, connection))

    def on_ready(self, connection: Connection) -> Awaitable[list[Any]]:
        plan = self._hooks._plans.get(_ON_READY)
        if plan is None:
            plan = self._hooks.plan(*_ON_READY)
        return run_plan(plan, "on_ready", (self._host, connection))

    def welcome_payload(self, connection: Connection) -> Awaitable[list[dict[str, Any]]]:
        plan = self._hooks._plans.get(_WELCOME_PAYLOAD)
        if plan is None:
            plan = self._hooks.plan(*_WELCOME_PAYLOAD)
        return run_plan(plan, "welcome_payload", (self._host, connection))

    async def on_message_received(self, connection: Connection, raw: str | bytes) -> None:
        await self._hooks.call(
            "on_message_received", host=self._host, connection=connection, raw=raw
        )

    async def on_message(self, connection: Connection, message: BaseModel) -> list[Any]:
        """The replies (non-None results) of the implementations that handle ``message``'s type
        (netrun_ws.plugins.routing). The host's message loop runs the same plans directly."""
        plan = self._host.message_loop.routes.plan_for(message.__class__)
        return await run_plan(plan, "on_message", (self._host, connection, message))

    async def on_invalid_message(
        self, connection: Connection, raw: str | bytes, error: ProtocolError
    ) -> None:
        """Isolated."""
        await self._hooks.call_isolated(
            "on_invalid_message", host=self._host, connection=connection, raw=raw, error=error
        )

    async def before_send(self, connection: Connection, message: Any) -> Any:
        """A chain: each implementation gets the previous one's message; may return DROP."""
        return await self._hooks.chain(
            "before_send", "message", message, host=self._host, connection=connection
        )

    async def after_send(self, connection: Connection, message: Any) -> None:
        await self._hooks.call(
            "after_send", host=self._host, connection=connection, message=message
        )

    async def authorize_room(self, connection: Connection, room: str) -> bool:
        """False when any implementation returns False."""
        verdicts = await self._hooks.call(
            "authorize_room", host=self._host, connection=connection, room=room
        )
        return all(verdict is not False for verdict in verdicts)

    async def on_room_join(self, connection: Connection, room: str) -> None:
        await self._hooks.call("on_room_join", host=self._host, connection=connection, room=room)

    async def on_room_leave(self, connection: Connection, room: str) -> None:
        """Isolated."""
        await self._hooks.call_isolated(
            "on_room_leave", host=self._host, connection=connection, room=room
        )

    async def on_heartbeat_missed(self, connection: Connection, missed: int) -> None:
        """Isolated."""
        await self._hooks.call_isolated(
            "on_heartbeat_missed", host=self._host, connection=connection, missed=missed
        )

    async def on_stale(self, connection: Connection) -> None:
        """Isolated."""
        await self._hooks.call_isolated("on_stale", host=self._host, connection=connection)

    async def on_error(self, connection: Connection | None, error: BaseException) -> None:
        """Isolated: a failure here is logged and never re-enters this hook."""
        await self._hooks.call_isolated(
            "on_error", host=self._host, connection=connection, error=error
        )

    def on_disconnect(
        self, connection: Connection, code: int, reason: str
    ) -> Awaitable[list[HookError]]:
        """Isolated."""
        return self._hooks.call_isolated(
            "on_disconnect", host=self._host, connection=connection, code=code, reason=reason
        )

    # ----------------------------------------------------------------- cluster events

    async def on_delivery_gap(self, gap: DeliveryGap) -> None:
        """Isolated."""
        await self._hooks.call_isolated("on_delivery_gap", host=self._host, gap=gap)

    async def on_user_revoked(self, user_id: str, reason: str) -> None:
        """Isolated."""
        await self._hooks.call_isolated(
            "on_user_revoked", host=self._host, user_id=user_id, reason=reason
        )
