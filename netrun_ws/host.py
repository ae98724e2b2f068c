"""``Host``: one configured netrun-ws server, and the API plugins receive as the ``host`` argument.

Start-up (``Host.__init__``): the configured plugins are loaded, registered and checked
(:class:`~netrun_ws.plugins.manager.PluginSet`), then ``configure``, ``register_message_types``
and ``register_routes`` run. The lifespan (``start``/``stop``/``drain``) is here; each connection
is served by :meth:`Host.serve_websocket` with the parts in :mod:`netrun_ws.runtime`: admission
(handshake to welcome, and release), the message loop, delivery (sending and fan-out) and rooms.
docs/architecture.md walks through it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

import pluggy
from pydantic import BaseModel
from starlette.routing import BaseRoute
from starlette.types import Receive, Send
from starlette.websockets import WebSocket

from netrun_ws.codes import CloseCode
from netrun_ws.config import LoadedConfig
from netrun_ws.connection import Connection
from netrun_ws.connection_manager import WebSocketConnectionManager
from netrun_ws.plugins.hooks import HookError, Hooks
from netrun_ws.plugins.loading import LoadedPlugin, describe_exception
from netrun_ws.plugins.manager import PluginSet
from netrun_ws.plugins.relay import HookRelay
from netrun_ws.plugins.routing import RouteError
from netrun_ws.protocol import MessageRegistry
from netrun_ws.redact import Redactions
from netrun_ws.runtime.admission import Admission
from netrun_ws.runtime.delivery import Delivery
from netrun_ws.runtime.expiry import Expiry
from netrun_ws.runtime.message_loop import MessageLoop
from netrun_ws.runtime.recovery import Recovery
from netrun_ws.runtime.revocation import REVOKED, Revocations
from netrun_ws.runtime.rooms import Rooms
from netrun_ws.stats import HostStats, collect_stats
from netrun_ws.store import Envelope, HistoryStore, LocalRecipientStore, PublishResult, Store
from netrun_ws.wire import encode_message
from netrun_ws.wire import error_reply as error_reply

__all__ = ["Host"]

logger = logging.getLogger("netrun_ws")


class Host:
    """One configured netrun-ws server. Plugins receive it as the ``host`` hook argument."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.config = loaded.config
        #: Free-form per-host state plugins may share.
        self.state: dict[str, Any] = {}
        # One bound method for every connection handed to its protocol (not one each).
        self._frames_server = self._serve_frames
        limits = self.config.limits
        self.manager = WebSocketConnectionManager(
            max_connections_per_user=limits.max_connections_per_user,
            heartbeat_interval=30,
            max_connections=limits.max_connections,
            send_queue_size=limits.send_queue,
            overflow_policy=limits.overflow,
        )
        self.registry = MessageRegistry()
        self.routes: list[BaseRoute] = []
        #: Where plugins read credentials (``register_redactions``): masked in log lines.
        self.redactions: list[Redactions] = []
        self.ready = False
        self.draining = False
        self._store: Store | None = None
        self.rooms = Rooms(self)
        self.delivery = Delivery(self)
        self.expiry = Expiry(self.manager)
        self.admission = Admission(self)
        self.recovery = Recovery(self)
        self.revocations = Revocations(self)
        self.message_loop = MessageLoop(self)
        self.manager.on_disconnect = self.admission.closed
        self._plugin_set = PluginSet(loaded)
        #: Hooks by name, for hooks plugins add (``await host.hooks.call("my_hook", ...)``).
        self.hooks: Hooks = self._plugin_set.hooks
        #: The built-in hooks, one typed method each (``await host.fire.on_stale(connection)``).
        self.fire = HookRelay(self.hooks, self)
        self._plugin_set.check(self.fire)
        self._setup()

    def _setup(self) -> None:
        fire = self.fire
        try:
            fire.configure(self.plugin_options)
            for plugin, models in fire.register_message_types():
                try:
                    self.registry.register(*models)
                except Exception as exc:
                    raise HookError(plugin, "register_message_types", exc) from exc
            self.routes.extend(fire.register_routes())
            answers = fire.register_redactions()
        except HookError as error:
            raise self._plugin_set.error(error) from error
        for plugin, answer in answers:
            if not isinstance(answer, Redactions):
                cause = f"returned {type(answer).__name__}, not Redactions"
                raise self._plugin_set.failed(plugin, f"failed in register_redactions: {cause}")
            self.redactions.append(answer)
        # Hot-path flags: a hook nobody implements costs one attribute test per message.
        self.delivery.hooks_ready()
        try:
            self.message_loop.hooks_ready()
        except RouteError as error:  # a handler of a type nobody registered
            raise self._plugin_set.failed(error.plugin, error.cause) from error

    # ------------------------------------------------------------------ plugins

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        return self._plugin_set.plugin_manager

    @property
    def plugins(self) -> dict[str, LoadedPlugin]:
        """pluggy name -> where the plugin came from."""
        return self._plugin_set.plugins

    @property
    def slots(self) -> dict[str, str]:
        """slot -> pluggy name of the plugin serving it (``metrics.N`` for each sink)."""
        return self._plugin_set.slots

    @property
    def plugin_options(self) -> dict[str, BaseModel | None]:
        """pluggy name -> the plugin's validated options."""
        return self._plugin_set.options

    # ------------------------------------------------------------------ lifespan

    @property
    def started(self) -> bool:
        """True once the store was provided and started (lifespan startup ran)."""
        return self._store is not None

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the store is available once the app has started")
        return self._store

    @property
    def delivery_gaps(self) -> int:
        """How many times messages from other nodes may have been lost (``on_delivery_gap``)."""
        return self.delivery.delivery_gaps

    async def start(self) -> None:
        """ASGI lifespan startup: obtain and start the store, then run ``startup`` hooks."""
        try:
            store = await self.fire.provide_store()
        except HookError as error:
            raise self._plugin_set.error(error) from error
        if store is None:
            raise RuntimeError(f"store plugin {self.config.store.plugin!r} provided no store")
        self._store = store
        if isinstance(store, HistoryStore):
            store.configure_history(self.config.history)
        if isinstance(store, LocalRecipientStore):
            store.use_local_recipients(self.delivery.has_local_recipients)
        await store.start(self.delivery.deliver_local, self.delivery.delivery_gap)
        try:
            await self.fire.startup()
        except HookError as error:
            raise self._plugin_set.error(error) from error
        self.ready = True
        logger.info(
            "netrun-ws ready: websocket at %s, plugins: %s",
            self.config.server.path,
            ", ".join(f"{key}={self.plugins[name].name}" for key, name in self.slots.items()),
        )

    async def stop(
        self, code: int = CloseCode.GOING_AWAY, reason: str = "server shutting down"
    ) -> None:
        """ASGI lifespan shutdown: close all connections, run ``shutdown`` hooks, stop the store."""
        self.ready = False
        await self.manager.close_all(code, reason)
        await self.fire.shutdown()
        if self._store is not None:
            try:
                await self._store.stop()
            except Exception as exc:
                logger.error("store failed to stop: %s", describe_exception(exc))

    async def drain(self, timeout: float | None = None) -> int:
        """Graceful drain (SIGTERM): refuse new connections, tell every client how to resume, and
        close it with 1012. Sessions are saved as each closes. Returns how many were closed."""
        self.ready = False
        self.draining = True
        for connection in self.manager.connections():
            connection.enqueue(
                encode_message(
                    {
                        "type": "disconnect",
                        "code": int(CloseCode.SERVICE_RESTART),
                        "reason": "server restarting: reconnect with backoff and resume",
                        "session_id": connection.session_id,
                    }
                )
            )
        closing = self.manager.close_all(CloseCode.SERVICE_RESTART, "service restart")
        try:
            return await asyncio.wait_for(closing, timeout)
        except TimeoutError:
            logger.warning("drain: connections still closing after %ss", timeout)
            return len(self.manager)

    async def is_ready(self) -> bool:
        if not self.ready or self._store is None:
            return False
        try:
            return await self._store.ready()
        except Exception as exc:
            logger.warning("store not ready: %s", describe_exception(exc))
            return False

    # ------------------------------------------------------------------ connections

    def connection(self, connection_id: str) -> Connection | None:
        return self.manager.get_connection(connection_id)

    def stats(self) -> HostStats:
        """This node's counts (connections, traffic, queues, the store's counters), read now:
        what the metrics sinks report."""
        return collect_stats(self)

    async def serve_websocket(
        self, websocket: WebSocket, receive: Receive | None = None, send: Send | None = None
    ) -> None:
        """The ASGI websocket endpoint: one call per connection, from handshake to disconnect.

        ``receive``/``send`` are the server's raw ASGI callables when the caller has them
        (``NetrunApp``): after the handshake, frames then bypass Starlette's per-frame wrappers.
        On netrun-ws's own protocol (a direct channel) the call returns once the connection is
        welcomed, its socket open: the protocol serves the rest (``serve_after_app``), so ASGI
        middleware around the app sees the call end before the connection does.
        """
        admission = self.admission
        admitted = await admission.admit(websocket)
        if admitted is None:
            return
        identity, accepted = admitted
        connection = await admission.open(websocket, identity, accepted)
        if connection is None:
            return
        if self.revocations.revoked_since(identity, connection.metadata["revocation_checked_at"]):
            # Revoked between the admission's check and the registration: closed like the rest.
            await self.manager.disconnect(
                connection.connection_id, CloseCode.POLICY_VIOLATION, REVOKED
            )
            return
        if send is not None:
            connection.asgi_send = send
        close_code: int = CloseCode.NORMAL
        close_reason = ""
        handed_over = False
        try:
            await self.fire.on_connect(connection)
            left = await admission.welcome(connection, identity)
            if left is not None:
                close_code, close_reason = left
            else:
                self.expiry.schedule(connection, identity.expires_at)
                await self.fire.on_ready(connection)
                direct = connection.direct
                if direct is not None:
                    # netrun-ws's protocol serves the frames in tasks of its own and lets this
                    # call return: an idle connection keeps no coroutine, nor this chain.
                    direct.serve_after_app(
                        self._frames_server, connection, "unread" in connection.metadata
                    )
                    handed_over = True
                    return
                handed_over = True  # _serve_frames ends the connection, whatever happens
                await self._serve_frames(connection, receive or websocket.receive)
        except Exception as exc:
            close_code, close_reason = await self._connection_failed(connection, exc)
        finally:
            if not handed_over:
                await self.manager.disconnect(connection.connection_id, close_code, close_reason)

    async def _serve_frames(self, connection: Connection, receive: Receive | None = None) -> bool:
        """A connection's frames, from its welcome to its disconnect; True when the message
        loop parked instead (no frame waiting: on a direct channel only), to be run again.
        ``receive``: the server's ASGI callable when the caller has it."""
        close_code: int = CloseCode.NORMAL
        close_reason = ""
        parked = False
        try:
            left = await self.message_loop.run(receive or connection.websocket.receive, connection)
            if left is None:
                parked = True
            else:
                close_code, close_reason = left
        except Exception as exc:
            close_code, close_reason = await self._connection_failed(connection, exc)
        finally:
            if not parked:
                await self.manager.disconnect(connection.connection_id, close_code, close_reason)
        return parked

    async def _connection_failed(self, connection: Connection, exc: Exception) -> tuple[int, str]:
        """Log a failure that ended a connection's serving, fire ``on_error``; the close (1011)."""
        if isinstance(exc, HookError):
            logger.error("%s", exc, exc_info=exc.error)
        else:  # a host bug must not leak a traceback to the client
            logger.error("connection %s failed", connection.connection_id, exc_info=exc)
        await self.fire.on_error(connection, exc)
        return CloseCode.INTERNAL_ERROR, "internal error"

    async def disconnect(
        self, connection: Connection | str, code: int = CloseCode.NORMAL, reason: str = ""
    ) -> None:
        """Close a connection (``on_disconnect`` fires once)."""
        connection_id = connection if isinstance(connection, str) else connection.connection_id
        await self.manager.disconnect(connection_id, code, reason)

    async def disconnect_user(
        self, user_id: str, code: int = CloseCode.POLICY_VIOLATION, reason: str = ""
    ) -> int:
        """Close every local connection of ``user_id`` (logout, revocation); returns how many."""
        ids = self.manager.get_user_connections(user_id)
        for connection_id in ids:
            await self.manager.disconnect(connection_id, code, reason)
        return len(ids)

    async def revoke_user(self, user_id: str, reason: str = "revoked") -> PublishResult:
        """Close every connection of ``user_id`` on every node with 1008 (logout, revocation),
        and refuse the user's credentials issued until now for ``server.revocation_ttl`` seconds
        (docs/security.md, "Revocation").

        ``on_user_revoked`` fires on each node before its connections close. Raises the store's
        error, after closing the connections, when the revocation could not be recorded.
        """
        return await self._revoke(
            self.revocations.revoke_user(user_id), Envelope("revoke", user_id, reason)
        )

    async def revoke_token(
        self, token_id: str, expires_at: float | None = None, reason: str = "revoked"
    ) -> PublishResult:
        """Refuse one token until ``expires_at`` (its ``exp``; ``server.revocation_ttl`` from
        now when None) and close the connections it authenticated, on every node.

        ``token_id`` is ``"jti:<jti>"`` or what ``netrun_ws.runtime.revocation.token_id`` gives
        for a verified identity. ``on_user_revoked`` does not fire (the user may stay).
        """
        return await self._revoke(
            self.revocations.revoke_token(token_id, expires_at),
            Envelope("revoke_token", token_id, reason),
        )

    async def _revoke(self, record: Awaitable[None], closing: Envelope) -> PublishResult:
        # Recorded first, so a reconnection racing the close is refused; the live connections
        # close even when the store failed to record it.
        failure: Exception | None = None
        try:
            await record
        except Exception as exc:
            failure = exc
        result = await self.publish(closing)
        if failure is not None:
            raise failure
        return result

    # ------------------------------------------------------------------ sending

    async def send(self, connection: Connection | str, message: Any) -> bool:
        """Send one message to one local connection, through ``before_send``/``after_send``."""
        return await self.delivery.send(connection, message)

    async def publish(self, envelope: Envelope) -> PublishResult:
        """Deliver an envelope on this node and send it once to every other node."""
        return await self.delivery.publish(envelope)

    async def send_to_user(self, user_id: str, message: Any) -> int:
        """Send to every connection of ``user_id`` on every node; returns local deliveries."""
        return await self.delivery.send_to_user(user_id, message)

    async def broadcast(self, message: Any, exclude_users: Iterable[str] = ()) -> int:
        """Send to all connections on all nodes but ``exclude_users``; returns local deliveries."""
        return await self.delivery.broadcast(message, exclude_users)

    async def publish_room(
        self, room: str, message: Any, exclude_connections: Iterable[str] = ()
    ) -> int:
        """Send to every member of ``room`` on every node; returns local deliveries."""
        return await self.delivery.publish_room(room, message, exclude_connections)

    async def deliver_local(self, envelope: Envelope) -> int:
        """Deliver an envelope to this node's connections (the store calls this on every node)."""
        return await self.delivery.deliver_local(envelope)

    # ------------------------------------------------------------------ rooms

    def rooms_of(self, connection: Connection) -> set[str]:
        """The rooms ``connection`` is in (a live set: do not modify it)."""
        return self.rooms.of(connection)

    async def join_room(self, connection: Connection, room: str) -> bool:
        """Add a connection to a room if no ``authorize_room`` implementation says False."""
        return await self.rooms.join(connection, room)

    async def leave_room(self, connection: Connection, room: str) -> bool:
        """Remove a connection from a room; False if it was not a member."""
        return await self.rooms.leave(connection, room)
