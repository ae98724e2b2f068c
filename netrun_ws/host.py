"""The host: loads the configured plugins and runs every connection through the lifecycle hooks.

Start-up (``Host.__init__``): resolve each slot's plugin, validate its options against its own
``Options`` model, register it with pluggy, check no unknown hook is implemented, call
``configure``, collect message types and routes. Runtime (``serve_websocket``): handshake ->
authenticate -> accept (WebSocketConnectionManager) -> ``on_connect`` -> welcome -> message loop ->
``on_disconnect``. docs/architecture.md walks through it.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pluggy
from pydantic import BaseModel, ValidationError
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute
from starlette.types import Message, Receive, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from netrun_ws import hookspecs
from netrun_ws.codes import CloseCode, ErrorCode
from netrun_ws.config import ConfigError, ConfigIssue, LoadedConfig
from netrun_ws.connection import Connection, uuid4_hex, wire_frame
from netrun_ws.connection_manager import WebSocketConnectionManager, encode_message
from netrun_ws.identity import AuthenticationError, Identity, Rejection
from netrun_ws.plugins.hooks import DROP, HookError, Hooks
from netrun_ws.plugins.loading import LoadedPlugin, PluginLoadError, describe_exception
from netrun_ws.plugins.slots import ResolvedPlugin, resolve_entry, slot_entries
from netrun_ws.protocol import MessageRegistry, ProtocolError
from netrun_ws.runtime.auth_messages import AuthMessage, RefreshMessage
from netrun_ws.runtime.deadlines import Deadlines
from netrun_ws.store import DeliveryGap, Envelope, PublishResult, Store

logger = logging.getLogger("netrun_ws")

#: The WebSocket subprotocol the server answers when a client offers it (e.g. next to a
#: "bearer.<token>" entry, which is never echoed).
SUBPROTOCOL = "netrun-ws"
_SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


#: Outbound frames queued on a connection past which its message loop yields to the writer.
_YIELD_TO_WRITER = 16


def error_reply(code: str, error: str, details: Any = None) -> dict[str, Any]:
    return {"type": "error", "error": error, "code": code, "details": details}


class Host:
    """One configured netrun-ws server. Plugins receive it as the ``host`` hook argument."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.config = loaded.config
        #: Free-form per-host state plugins may share.
        self.state: dict[str, Any] = {}
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.plugin_manager.add_hookspecs(hookspecs)
        #: pluggy name -> where the plugin came from.
        self.plugins: dict[str, LoadedPlugin] = {}
        #: slot -> pluggy name of the plugin serving it ("metrics.N" for each sink).
        self.slots: dict[str, str] = {}
        self.plugin_options: dict[str, BaseModel | None] = {}
        limits = self.config.limits
        self.manager = WebSocketConnectionManager(
            max_connections_per_user=limits.max_connections_per_user,
            heartbeat_interval=30,
            max_connections=limits.max_connections,
            send_queue_size=limits.send_queue,
            overflow_policy=limits.overflow,
        )
        self.manager.on_disconnect = self._connection_closed
        self.registry = MessageRegistry()
        self.routes: list[BaseRoute] = []
        self._store: Store | None = None
        self.ready = False
        self._rooms: dict[str, set[str]] = {}
        self.delivery_gaps = 0
        self.draining = False
        self._per_ip: dict[str, int] = {}
        self._background: set[asyncio.Future[None]] = set()
        # Every handshake gets server.handshake_timeout: one timer for all of them.
        self._handshake_deadlines = Deadlines(self.config.server.handshake_timeout)
        self._core_handlers: dict[
            type[BaseModel], Callable[[Connection, BaseModel], Awaitable[None]]
        ] = {
            RefreshMessage: self._refresh,
            AuthMessage: self._already_authenticated,
        }
        self.registry.register(AuthMessage, RefreshMessage)
        self._load_plugins()
        self.hooks = Hooks(self.plugin_manager)
        self._add_plugin_hookspecs()
        self._check_hook_names()
        self._setup()

    # ------------------------------------------------------------------ start-up

    def _load_plugins(self) -> None:
        issues: list[ConfigIssue] = []
        for entry in slot_entries(self.config):
            resolved = resolve_entry(self.loaded, entry, issues)
            if resolved is not None:
                self._register(resolved, issues)
        if issues:
            raise ConfigError(issues)

    def _register(self, resolved: ResolvedPlugin, issues: list[ConfigIssue]) -> None:
        entry, plugin = resolved.entry, resolved.plugin
        target: Any = plugin.module
        plugin_class = resolved.target_class()
        if plugin_class is not None:
            try:
                target = plugin_class()
            except Exception as exc:
                cause = f"failed to create Plugin(): {describe_exception(exc)}"
                raise PluginLoadError(entry.name, plugin.origin, cause) from exc
        pm_name = entry.key_path if entry.slot == "metrics" else (entry.slot or entry.name)
        if pm_name in self.plugins or self.plugin_manager.is_registered(target):
            issues.append(
                self.loaded.issue(entry.key_path, f"plugin {entry.name!r} is configured twice")
            )
            return
        try:
            self.plugin_manager.register(target, name=pm_name)
        except pluggy.PluginValidationError as exc:
            # pluggy's message spans lines (hook, definition, bad arguments): keep it on one.
            cause = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise PluginLoadError(entry.name, plugin.origin, cause) from exc
        self.plugins[pm_name] = plugin
        self.plugin_options[pm_name] = resolved.options
        if entry.slot is not None:
            self.slots[entry.key_path] = pm_name

    def _add_plugin_hookspecs(self) -> None:
        try:
            self.hooks.call_sync("add_hookspecs", plugin_manager=self.plugin_manager)
        except HookError as error:
            raise self._plugin_error(error) from error
        self.hooks.refresh()

    def _check_hook_names(self) -> None:
        """A misspelled hook would silently never fire: refuse it, naming plugin and hook."""
        known = [
            name
            for name in dir(self.plugin_manager.hook)
            if isinstance(caller := getattr(self.plugin_manager.hook, name), pluggy.HookCaller)
            and caller.has_spec()
        ]
        for hook_name in dir(self.plugin_manager.hook):
            caller = getattr(self.plugin_manager.hook, hook_name)
            if not isinstance(caller, pluggy.HookCaller):
                continue
            for impl in caller.get_hookimpls():
                if impl.hookwrapper or impl.wrapper:
                    # The dispatcher calls implementations directly: a wrapper would never run.
                    loaded = self.plugins[self.plugin_manager.get_name(impl.plugin) or "?"]
                    cause = f"hook wrappers are not supported ({hook_name})"
                    raise PluginLoadError(loaded.name, loaded.origin, cause)
            if caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                pm_name = self.plugin_manager.get_name(impl.plugin) or "?"
                loaded = self.plugins[pm_name]
                hint = difflib.get_close_matches(hook_name, known, n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
                cause = f"implements unknown hook {hook_name!r}{suggestion}"
                raise PluginLoadError(loaded.name, loaded.origin, cause)

    def _plugin_error(self, error: HookError) -> PluginLoadError:
        loaded = self.plugins.get(error.plugin)
        name = loaded.name if loaded else error.plugin
        origin = loaded.origin if loaded else "unknown origin"
        cause = f"failed in {error.hook}: {describe_exception(error.error)}"
        return PluginLoadError(name, origin, cause)

    def _setup(self) -> None:
        hooks = self.hooks
        try:
            hooks.call_sync_each(
                "configure",
                lambda plugin: {"host": self, "options": self.plugin_options.get(plugin)},
            )
            for plugin, models in hooks.call_sync_by_plugin("register_message_types", host=self):
                try:
                    self.registry.register(*models)
                except Exception as exc:
                    raise HookError(plugin, "register_message_types", exc) from exc
            for routes in hooks.call_sync("register_routes", host=self):
                self.routes.extend(routes)
        except HookError as error:
            raise self._plugin_error(error) from error
        # Hot-path flags: a hook nobody implements costs one attribute test per message.
        self._has_received = hooks.has("on_message_received")
        self._has_on_message = hooks.has("on_message")
        self._has_invalid = hooks.has("on_invalid_message")
        self._has_before_send = hooks.has("before_send")
        self._has_after_send = hooks.has("after_send")
        self._send_hooked = self._has_before_send or self._has_after_send
        self._on_message = hooks.bind("on_message", "host", "connection", "message")

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

    async def start(self) -> None:
        """ASGI lifespan startup: obtain and start the store, then run ``startup`` hooks."""
        try:
            store = await self.hooks.first("provide_store", host=self)
        except HookError as error:
            raise self._plugin_error(error) from error
        if store is None:
            raise RuntimeError(f"store plugin {self.config.store.plugin!r} provided no store")
        self._store = store
        await store.start(self.deliver_local, self._delivery_gap)
        try:
            await self.hooks.call("startup", host=self)
        except HookError as error:
            raise self._plugin_error(error) from error
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
        await self.hooks.call_isolated("shutdown", host=self)
        if self._store is not None:
            try:
                await self._store.stop()
            except Exception as exc:
                logger.error("store failed to stop: %s", describe_exception(exc))

    async def _delivery_gap(self, gap: DeliveryGap) -> None:
        """Messages from other nodes may have been lost: say so in the log, hooks and to clients."""
        self.delivery_gaps += 1
        logger.warning(
            "delivery gap: messages from other nodes between %.3f and %.3f may be lost (%s)",
            gap.started_at,
            gap.ended_at,
            gap.reason,
        )
        await self.hooks.call_isolated("on_delivery_gap", host=self, gap=gap)
        notice = encode_message(
            {"type": "delivery_gap", "since": gap.started_at, "until": gap.ended_at}
        )
        for connection in self.manager.connections():
            connection.enqueue(notice)

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

    def _origin_allowed(self, websocket: WebSocket) -> bool:
        allowed = self.config.server.allowed_origins
        if not allowed:
            return True
        origin = websocket.headers.get("origin")
        # Non-browser clients send no Origin; browsers always do, so a page cannot omit it.
        return origin is None or origin in allowed

    async def _identity(self, hook: str, **kwargs: Any) -> Identity | None:
        """First non-None Identity from ``authenticate`` or ``verify_token``.

        Raises AuthenticationError for a refusal, HookError/TypeError for a broken plugin.
        """
        try:
            identity = await self.hooks.first(hook, host=self, **kwargs)
        except HookError as error:
            if isinstance(error.error, AuthenticationError):
                raise error.error from None  # a refusal, not a plugin failure
            raise
        if identity is not None and not isinstance(identity, Identity):
            raise TypeError(f"{hook} returned {type(identity).__name__}, not Identity")
        return identity

    @staticmethod
    def _subprotocol(websocket: WebSocket) -> str | None:
        # Answer only the non-secret protocol name, never an offered "bearer.<token>" entry.
        return SUBPROTOCOL if SUBPROTOCOL in websocket.scope.get("subprotocols", ()) else None

    async def _refuse(
        self, websocket: WebSocket, status: int, reason: str, *, accepted: bool = False
    ) -> None:
        """Refuse an upgrade before accept with an HTTP status (403 where the server cannot);
        after accept (first-message auth) with the close code that status stands for."""
        logger.info("refused connection (%s): %s", status, reason)
        if accepted:
            code = CloseCode.TRY_AGAIN_LATER if status in (429, 503) else CloseCode.POLICY_VIOLATION
            await websocket.close(code=code, reason=reason[:120])
        elif "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(JSONResponse({"error": reason}, status))
        else:  # ASGI servers without the denial-response extension answer 403
            await websocket.close(code=CloseCode.POLICY_VIOLATION)

    async def serve_websocket(
        self, websocket: WebSocket, receive: Receive | None = None, send: Send | None = None
    ) -> None:
        """The ASGI websocket endpoint: one call per connection, from handshake to disconnect.

        ``receive``/``send`` are the server's raw ASGI callables when the caller has them
        (``NetrunApp``): after the handshake, frames then bypass Starlette's per-frame wrappers.
        """
        admitted = await self._admit(websocket)
        if admitted is None:
            return
        identity, accepted = admitted
        connection = await self._open(websocket, identity, accepted)
        if connection is None:
            return
        if send is not None:
            connection.asgi_send = send
        close_code: int = CloseCode.NORMAL
        close_reason = ""
        try:
            await self.hooks.call("on_connect", host=self, connection=connection)
            resumed = await self._resume(connection)
            await self._send_welcome(connection, identity, resumed)
            self._schedule_expiry(connection, identity.expires_at)
            close_code, close_reason = await self._message_loop(
                receive or websocket.receive, connection
            )
        except HookError as error:
            logger.error("%s", error, exc_info=error.error)
            await self._report_error(connection, error)
            close_code, close_reason = CloseCode.INTERNAL_ERROR, "internal error"
        except Exception as exc:  # a host bug must not leak a traceback to the client
            logger.exception("connection %s failed", connection.connection_id)
            await self._report_error(connection, exc)
            close_code, close_reason = CloseCode.INTERNAL_ERROR, "internal error"
        finally:
            await self.manager.disconnect(connection.connection_id, close_code, close_reason)

    async def _admit(self, websocket: WebSocket) -> tuple[Identity, bool] | None:
        """Origin, ``handshake``, authentication. Returns the identity and whether the socket was
        already accepted (first-message auth), or None when the client was refused."""
        if not self._origin_allowed(websocket):
            origin = websocket.headers.get("origin")
            await self._refuse(websocket, 403, f"origin {origin!r} not allowed")
            return None
        try:
            rejection = await self.hooks.first("handshake", host=self, request=websocket)
        except HookError as error:
            logger.error("%s", error)
            await websocket.close(code=CloseCode.INTERNAL_ERROR)
            return None
        if isinstance(rejection, Rejection):
            await self._refuse(websocket, 403, rejection.reason)
            return None
        deadlines = self._handshake_deadlines
        accepted = False
        try:
            identity = await deadlines.run(self._identity("authenticate", request=websocket))
            if identity is None and self.config.server.first_message_auth:
                await websocket.accept(subprotocol=self._subprotocol(websocket))
                accepted = True
                identity = await deadlines.run(self._first_message_auth(websocket))
            if identity is None:
                raise AuthenticationError("authentication required")
            return identity, accepted
        except AuthenticationError as error:
            reason, code = error.reason, CloseCode.POLICY_VIOLATION
        except TimeoutError:
            reason, code = "authentication timeout", CloseCode.POLICY_VIOLATION
        except (HookError, TypeError) as error:
            logger.error("authentication failed: %s", error)
            reason, code = "authentication error", CloseCode.INTERNAL_ERROR
        except WebSocketDisconnect:
            return None  # the client left while authenticating
        if not accepted:
            await websocket.accept(subprotocol=self._subprotocol(websocket))
        await websocket.close(code=code, reason=reason[:120])
        return None

    async def _first_message_auth(self, websocket: WebSocket) -> Identity | None:
        frame = await websocket.receive()
        if frame["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(frame.get("code", 1005))
        text = frame.get("text")
        try:
            message = AuthMessage.model_validate_json(text if text is not None else b"")
        except ValidationError:
            raise AuthenticationError('expected {"type": "auth", "token": ...}') from None
        identity = await self._identity("verify_token", token=message.token)
        if identity is None:
            raise AuthenticationError("invalid token")
        return identity

    async def _open(
        self, websocket: WebSocket, identity: Identity, accepted: bool
    ) -> Connection | None:
        """Count the connection (node, client IP and, through the store, cluster-wide per-user
        limits), then accept it. Returns None when refused."""
        limits = self.config.limits
        if self.draining:
            await self._refuse(websocket, 503, "server restarting", accepted=accepted)
            return None
        if len(self.manager) >= limits.max_connections:
            reason = f"max_connections ({limits.max_connections}) reached"
            await self._refuse(websocket, 503, reason, accepted=accepted)
            return None
        ip = websocket.client.host if websocket.client else "unknown"
        if self._per_ip.get(ip, 0) >= limits.max_connections_per_ip:
            reason = f"max_connections_per_ip ({limits.max_connections_per_ip}) reached"
            await self._refuse(websocket, 429, reason, accepted=accepted)
            return None
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1  # reserved before any await
        connection = await self._open_counted(websocket, identity, accepted, ip)
        if connection is None:
            self._release_ip(ip)
        return connection

    def _release_ip(self, ip: str) -> None:
        remaining = self._per_ip.get(ip, 1) - 1
        if remaining > 0:
            self._per_ip[ip] = remaining
        else:
            self._per_ip.pop(ip, None)

    async def _open_counted(
        self, websocket: WebSocket, identity: Identity, accepted: bool, ip: str
    ) -> Connection | None:
        limits = self.config.limits
        # Most connections carry no query string: skip parsing one then.
        query = websocket.scope.get("query_string", b"")
        requested = websocket.query_params.get("session_id") if query else None
        resuming = bool(requested and _SESSION_ID.match(requested))
        session_id = requested if requested and resuming else uuid4_hex()
        user_id = identity.user_id
        store = self.store
        try:
            store_id = await store.sessions.create_connection(
                session_id, user_id, identity.username or user_id
            )
            limit = limits.max_connections_per_user
            admitted = await store.add_connection(store_id, user_id, limit)
        except Exception as exc:
            logger.error("store unavailable at connect: %s", describe_exception(exc))
            await self._refuse(websocket, 503, "session store unavailable", accepted=accepted)
            return None
        if not admitted:
            await self._forget(store_id, user_id, counted=False)
            reason = f"max_connections_per_user ({limits.max_connections_per_user}) reached"
            await self._refuse(websocket, 429, reason, accepted=accepted)
            return None
        metadata: dict[str, Any] = {
            "identity": identity,
            "state": {},  # "rooms" is created by rooms_of() when first needed
            "store_connection_id": store_id,
            "resuming": resuming,
            "ip": ip,
        }
        try:
            # A client resuming its session id replaces a connection that has not noticed yet.
            connection_id = await self.manager.connect(
                websocket,
                user_id,
                session_id=session_id,
                metadata=metadata,
                accept=not accepted,
                subprotocol=self._subprotocol(websocket),
                replace_session=True,
            )
        except ValueError as error:
            logger.info("refused connection: %s", error)
            await self._forget(store_id, user_id)
            if websocket.application_state == WebSocketState.CONNECTING:  # never left hanging
                await self._refuse(websocket, 503, "connection refused")
            return None
        return self.manager.get_connection(connection_id)

    async def _forget(self, store_id: str, user_id: str, *, counted: bool = True) -> None:
        """Release a connection's store entries; a store outage is logged, never raised."""
        try:
            if counted:
                await self.store.remove_connection(store_id, user_id)
            await self.store.sessions.disconnect(store_id, save_state=True)
        except Exception as exc:
            logger.error("session store failed on disconnect: %s", describe_exception(exc))

    async def _resume(self, connection: Connection) -> bool:
        """A client returning with its session id gets its saved state back and rejoins rooms."""
        if not connection.metadata.get("resuming"):
            return False
        try:
            state = await self.store.sessions.restore_connection_state(
                connection.metadata["store_connection_id"]
            )
        except Exception as exc:
            logger.error("session store failed on resume: %s", describe_exception(exc))
            return False
        if not state:
            return False
        data = state.get("data")
        connection.metadata["state"] = data if isinstance(data, dict) else {}
        for room in state.get("rooms", ()):
            if isinstance(room, str):
                await self.join_room(connection, room)
        return True

    async def _send_welcome(
        self, connection: Connection, identity: Identity, resumed: bool
    ) -> None:
        welcome: dict[str, Any] = {}
        for payload in await self.hooks.call("welcome_payload", host=self, connection=connection):
            welcome.update(payload)
        welcome.update(
            type="connect",
            connection_id=connection.connection_id,
            user_id=identity.user_id,
            session_id=connection.session_id,
            resumed=resumed,
        )
        if resumed:
            welcome["state"] = connection.metadata["state"]
            welcome["rooms"] = sorted(self.rooms_of(connection))
        await self.send(connection, welcome)

    def _schedule_expiry(self, connection: Connection, expires_at: float | None) -> None:
        """Close the connection with 1008 when its credentials expire, unless refreshed first."""
        previous = connection.metadata.pop("expiry", None)
        if previous is not None:
            previous.cancel()
        if expires_at is None:
            return
        delay = max(0.0, expires_at - time.time())
        loop = asyncio.get_running_loop()
        connection.metadata["expiry"] = loop.call_later(delay, self._expire, connection)

    def _expire(self, connection: Connection) -> None:
        closing = self.manager.disconnect(
            connection.connection_id, CloseCode.POLICY_VIOLATION, "token expired"
        )
        task = asyncio.ensure_future(closing)
        self._background.add(task)  # keep a reference until it is done
        task.add_done_callback(self._background.discard)

    async def _refresh(self, connection: Connection, message: BaseModel) -> None:
        assert isinstance(message, RefreshMessage)
        try:
            identity = await self._identity("verify_token", token=message.token)
        except AuthenticationError as error:
            identity, reason = None, error.reason
        except (HookError, TypeError) as error:
            logger.error("refresh failed: %s", error)
            identity, reason = None, "refresh failed"
        else:
            reason = "invalid token"
        if identity is None or identity.user_id != connection.user_id:
            if identity is not None:
                reason = "token is for another user"
            await self.send(connection, error_reply(ErrorCode.INVALID_TOKEN, reason))
            return
        connection.metadata["identity"] = identity
        self._schedule_expiry(connection, identity.expires_at)
        await self.send(connection, {"type": "refreshed", "expires_at": identity.expires_at})

    async def _already_authenticated(self, connection: Connection, message: BaseModel) -> None:
        await self.send(connection, error_reply(ErrorCode.FORBIDDEN, "already authenticated"))

    async def _message_loop(self, receive: Receive, connection: Connection) -> tuple[int, str]:
        """Receive frames until the peer leaves; returns the close code and reason to record."""
        limits = self.config.limits
        max_errors = limits.max_consecutive_errors
        max_bytes = limits.max_message_bytes
        rate = limits.messages_per_second
        burst = max(rate, 1.0)
        tokens, last = burst, time.time()
        errors = limited = 0
        registry_parse = self.registry.parse
        # Fixed once the host is set up: read once per connection, not once per frame.
        has_received, has_invalid = self._has_received, self._has_invalid
        has_on_message, core_handlers = self._has_on_message, self._core_handlers
        on_message = self._on_message
        # netrun-ws's uvicorn protocol: frames already received are taken without an await, and
        # an idle connection waits on a bare future (no coroutine frames kept per connection).
        direct = connection.direct
        while True:
            frame: Message | None
            if direct is not None:
                frame = direct.receive_nowait()
                while frame is None:
                    await direct.receive_ready()
                    frame = direct.receive_nowait()
            else:
                frame = await receive()
            if frame["type"] == "websocket.disconnect":
                return frame.get("code", 1005), frame.get("reason") or ""
            if (queue := connection._queue) is not None and len(queue) > _YIELD_TO_WRITER:
                # Replies are piling up behind a burst of requests that needed no await: let the
                # writer run before reading on, or a fast client looks like a slow consumer.
                await asyncio.sleep(0)
            raw: str | bytes | None = frame.get("text")
            if raw is None:
                raw = frame.get("bytes") or b""
            size = len(raw)
            now = time.time()
            connection.last_activity = now
            connection.messages_received += 1
            connection.bytes_received += size
            if size > max_bytes:  # uvicorn enforces ws_max_size too; other servers may not
                return CloseCode.MESSAGE_TOO_BIG, "message too big"
            if has_received:
                await self.hooks.call(
                    "on_message_received", host=self, connection=connection, raw=raw
                )
            if rate:
                # Wall clock, read once per frame; a clock stepping back adds no tokens.
                tokens = min(burst, tokens + max(0.0, now - last) * rate)
                last = now
                if tokens < 1.0:
                    limited += 1
                    if limited > burst:
                        return CloseCode.RATE_LIMITED, "rate limit exceeded"
                    await self.send(
                        connection,
                        error_reply(ErrorCode.RATE_LIMITED, f"over {rate:g} messages per second"),
                    )
                    continue
                tokens -= 1.0
                limited = 0
            try:
                if isinstance(raw, bytes):
                    raise ProtocolError(
                        ErrorCode.BINARY_NOT_SUPPORTED, "binary frames are not supported", None
                    )
                message = registry_parse(raw)
            except ProtocolError as error:
                errors += 1
                await self.send(connection, error_reply(error.code, error.error, error.details))
                if has_invalid:
                    await self.hooks.call_isolated(
                        "on_invalid_message", host=self, connection=connection, raw=raw, error=error
                    )
                if errors >= max_errors:
                    return CloseCode.TOO_MANY_INVALID_MESSAGES, "too many invalid messages"
                continue
            errors = 0
            core = core_handlers.get(message.__class__)
            if core is not None:
                await core(connection, message)
                continue
            if not has_on_message:
                continue
            # on_message, inlined: this is the per-message path.
            try:
                replies = await on_message(self, connection, message)
            except HookError as error:
                await self._handler_failed(connection, error)
                continue
            if self._send_hooked:
                for reply in replies:
                    await self.send(connection, reply)
            else:  # no before_send/after_send: nothing to await
                for reply in replies:
                    connection.enqueue(encode_message(reply))

    async def _handler_failed(self, connection: Connection, error: HookError) -> None:
        logger.error("%s", error, exc_info=error.error)
        await self.send(
            connection,
            error_reply(ErrorCode.HANDLER_ERROR, f"message handler failed ({error.plugin})"),
        )
        await self._report_error(connection, error)

    async def _report_error(self, connection: Connection | None, error: BaseException) -> None:
        await self.hooks.call_isolated("on_error", host=self, connection=connection, error=error)

    async def _connection_closed(self, connection: Connection, code: int, reason: str) -> None:
        """Called once per connection by the manager, whatever closed it."""
        expiry = connection.metadata.pop("expiry", None)
        if expiry is not None:
            expiry.cancel()
        ip = connection.metadata.get("ip")
        if ip is not None:
            self._release_ip(ip)
        rooms = sorted(self.rooms_of(connection))
        for room in rooms:
            await self._leave(connection, room)
        store_id = connection.metadata.get("store_connection_id")
        if store_id is not None and self._store is not None:
            # Saved under the session id, so the client can resume on any node (welcome "resumed").
            state = {"rooms": rooms, "data": connection.metadata.get("state", {})}
            try:
                await self._store.sessions.save_connection_state(store_id, state)
            except Exception as exc:
                logger.error("session store failed to save state: %s", describe_exception(exc))
            await self._forget(store_id, connection.user_id)
        await self.hooks.call_isolated(
            "on_disconnect", host=self, connection=connection, code=code, reason=reason
        )

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
        """Close every connection of ``user_id`` on every node with 1008 (logout, revocation).

        ``on_user_revoked`` fires on each node before its connections close.
        """
        return await self.publish(Envelope("revoke", user_id, reason))

    async def _revoke_local(self, user_id: str, reason: str) -> int:
        await self.hooks.call_isolated("on_user_revoked", host=self, user_id=user_id, reason=reason)
        return await self.disconnect_user(user_id, CloseCode.POLICY_VIOLATION, reason)

    # ------------------------------------------------------------------ sending

    async def send(self, connection: Connection | str, message: Any) -> bool:
        """Send one message to one local connection, through ``before_send``/``after_send``."""
        if isinstance(connection, str):
            found = self.manager.get_connection(connection)
            if found is None:
                return False
            connection = found
        if self._has_before_send:
            message = await self.hooks.chain(
                "before_send", "message", message, host=self, connection=connection
            )
            if message is DROP:
                return False
        if not connection.enqueue(encode_message(message)):
            return False
        if self._has_after_send:
            await self.hooks.call("after_send", host=self, connection=connection, message=message)
        return True

    async def publish(self, envelope: Envelope) -> PublishResult:
        """Deliver an envelope on this node and send it once to every other node."""
        return await self.store.publish(envelope)

    async def send_to_user(self, user_id: str, message: Any) -> int:
        """Send to every connection of ``user_id`` on every node; returns local deliveries."""
        result = await self.publish(Envelope("user", user_id, encode_message(message)))
        return result.local

    async def broadcast(self, message: Any, exclude_users: Iterable[str] = ()) -> int:
        """Send to all connections on all nodes but ``exclude_users``; returns local deliveries."""
        envelope = Envelope("broadcast", None, encode_message(message), frozenset(exclude_users))
        return (await self.publish(envelope)).local

    async def publish_room(
        self, room: str, message: Any, exclude_connections: Iterable[str] = ()
    ) -> int:
        """Send to every member of ``room`` on every node; returns local deliveries."""
        envelope = Envelope(
            "room",
            room,
            encode_message(message),
            exclude_connections=frozenset(exclude_connections),
        )
        return (await self.publish(envelope)).local

    def _local_targets(self, envelope: Envelope) -> list[Connection]:
        """This node's recipients of ``envelope`` (a snapshot: safe while they come and go)."""
        kind, target = envelope.kind, envelope.target or ""
        excluded = envelope.exclude_connections
        if kind == "broadcast":
            users = envelope.exclude_users
            return [
                connection
                for connection in self.manager.connections()
                if connection.user_id not in users and connection.connection_id not in excluded
            ]
        if kind == "user":
            ids: Iterable[str] = self.manager.get_user_connections(target)
        elif kind == "room":
            ids = tuple(self._rooms.get(target, ()))
        elif kind == "connection":
            ids = (target,)
        else:
            return []
        get = self.manager.get_connection
        found = (get(connection_id) for connection_id in ids if connection_id not in excluded)
        return [connection for connection in found if connection is not None]

    async def deliver_local(self, envelope: Envelope) -> int:
        """Deliver an envelope to this node's connections (the store calls this on every node)."""
        if envelope.kind == "revoke":
            reason = envelope.payload
            text = reason.decode(errors="replace") if isinstance(reason, bytes) else reason
            return await self._revoke_local(envelope.target or "", text)
        targets = self._local_targets(envelope)
        if not targets:
            return 0
        delivered = 0
        if self._send_hooked:
            message = json.loads(envelope.payload)
            for connection in targets:
                if await self.send(connection, message):
                    delivered += 1
            return delivered
        # Encoded and framed once: every recipient gets the same bytes, without an await.
        payload = envelope.payload
        wire = wire_frame(payload)
        for connection in targets:
            if connection.enqueue(payload, wire):
                delivered += 1
        return delivered

    # ------------------------------------------------------------------ rooms

    def rooms_of(self, connection: Connection) -> set[str]:
        rooms: set[str] = connection.metadata.setdefault("rooms", set())
        return rooms

    async def join_room(self, connection: Connection, room: str) -> bool:
        """Add a connection to a room if no ``authorize_room`` implementation says False."""
        verdicts = await self.hooks.call(
            "authorize_room", host=self, connection=connection, room=room
        )
        if any(verdict is False for verdict in verdicts):
            return False
        rooms = self.rooms_of(connection)
        if room in rooms:
            return True
        rooms.add(room)
        self._rooms.setdefault(room, set()).add(connection.connection_id)
        await self.store.join_room(room, connection.connection_id, connection.user_id)
        await self.hooks.call("on_room_join", host=self, connection=connection, room=room)
        return True

    async def leave_room(self, connection: Connection, room: str) -> bool:
        """Remove a connection from a room; False if it was not a member."""
        if room not in self.rooms_of(connection):
            return False
        await self._leave(connection, room)
        return True

    async def _leave(self, connection: Connection, room: str) -> None:
        self.rooms_of(connection).discard(room)
        members = self._rooms.get(room)
        if members is not None:
            members.discard(connection.connection_id)
            if not members:
                del self._rooms[room]
        if self._store is not None:
            await self._store.leave_room(room, connection.connection_id)
        await self.hooks.call_isolated("on_room_leave", host=self, connection=connection, room=room)
