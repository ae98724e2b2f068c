"""The message loop: one coroutine per connection, from its first frame to its disconnect (on
netrun-ws's protocol it parks while the connection is idle, and runs again at its next event).

Per frame: activity and counters, the size limit (1009), ``on_message_received``, the token bucket
(``rate_limited`` replies, then 4102), one pydantic validation against the union of registered
types (errors get a reply, ``on_invalid_message``, and 4000 after too many in a row), then the
host's own messages (``refresh``, a second ``auth``) or the ``on_message`` implementations that
handle the message's type (:mod:`netrun_ws.plugins.routing`), whose results are the replies. Hooks
nobody implements are not called; which ones are implemented, and who handles which type, is read
once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from starlette.types import Message, Receive

from netrun_ws.codes import CloseCode, ErrorCode
from netrun_ws.identity import AuthenticationError, Identity
from netrun_ws.plugins.hooks import HookError, Plan, awaitable, run_plan
from netrun_ws.plugins.loading import describe_exception
from netrun_ws.plugins.routing import MessageRoutes
from netrun_ws.protocol import ProtocolError
from netrun_ws.runtime.auth_messages import AuthMessage, RefreshMessage, SinceMessage
from netrun_ws.runtime.revocation import REVOKED
from netrun_ws.wire import encode_message, error_reply

if TYPE_CHECKING:
    from netrun_ws.connection import Connection
    from netrun_ws.host import Host

__all__ = ["MessageLoop"]

logger = logging.getLogger("netrun_ws")

#: Outbound frames queued on a connection past which its message loop yields to the writer.
_YIELD_TO_WRITER = 16

#: Seconds a connection was quiet before its latest frames past which, once no frame is waiting,
#: its loop parks (returns None) rather than waiting in place: a connection that sends less than
#: about once a second keeps no coroutine between its frames, one that sends more keeps its loop
#: (a wake from parked costs a task).
PARK_AFTER = 1.0


class MessageLoop:
    """Runs connections' message loops for one host."""

    def __init__(self, host: Host) -> None:
        self._host = host
        host.registry.register(AuthMessage, RefreshMessage, SinceMessage)
        self._core_handlers: dict[
            type[BaseModel], Callable[[Connection, BaseModel], Awaitable[None]]
        ] = {
            RefreshMessage: self._refresh,
            AuthMessage: self._already_authenticated,
            SinceMessage: self._since_out_of_place,
        }

    def hooks_ready(self) -> None:
        """Read once which per-message hooks are implemented and which ``on_message``
        implementations handle which message type (after plugins are set up).

        Raises :class:`~netrun_ws.plugins.routing.RouteError` for a handler of a type that is
        not registered.
        """
        host = self._host
        fire = host.fire
        self._has_received = fire.has("on_message_received")
        self._has_invalid = fire.has("on_invalid_message")
        plan = host.hooks.plan("on_message", ("host", "connection", "message"))
        self.routes = MessageRoutes(plan, host.registry.types())

    async def run(self, receive: Receive, connection: Connection) -> tuple[int, str] | None:
        """Receive frames until the peer leaves; returns the close code and reason to record.

        On a direct channel it may instead *park*: return None when no frame is waiting and the
        connection had been quiet for over :data:`PARK_AFTER` before its latest frames, its
        state kept on the connection; the caller runs it again when the next event arrives.
        """
        host = self._host
        fire, delivery = host.fire, host.delivery
        limits = host.config.limits
        max_errors = limits.max_consecutive_errors
        max_bytes = limits.max_message_bytes
        rate = limits.messages_per_second
        burst = max(rate, 1.0)
        parked = connection.parked_loop
        if parked is None:
            tokens, last = burst, time.time()
            errors = limited = 0
        else:  # woken: the rate limit and the error count go on where they were
            tokens, last, errors, limited = parked
            connection.parked_loop = None
        # How long the connection was quiet before its latest frames (the wait they ended, since
        # its last frame or its connect): read once per wait, not per frame.
        quiet = time.time() - connection.last_activity
        parse_text = host.registry.parse_text
        # Fixed once the host is set up: read once per connection, not once per frame.
        has_received, has_invalid = self._has_received, self._has_invalid
        core_handlers = self._core_handlers
        routes = self.routes
        route_table, plan_for = routes.table, routes.plan_for
        send_hooked = delivery.hooked
        # netrun-ws's uvicorn protocol: frames already received are taken without an await, and
        # an idle connection waits on a bare future (no coroutine frames kept per connection).
        direct = connection.direct
        # A frame read while waiting for a resume's `since` frame that was not one.
        unread: Message | None = connection.metadata.pop("unread", None)
        while True:
            frame: Message | None
            if unread is not None:
                frame, unread = unread, None
            elif direct is not None:
                frame = direct.receive_nowait()
                if frame is None:
                    if quiet > PARK_AFTER:
                        connection.parked_loop = (tokens, last, errors, limited)
                        return None
                    while frame is None:
                        await direct.receive_ready()
                        frame = direct.receive_nowait()
                    quiet = time.time() - connection.last_activity
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
                await fire.on_message_received(connection, raw)
            if rate:
                # Wall clock, read once per frame; a clock stepping back adds no tokens. (Tests,
                # not min/max: two builtin calls per frame on the per-message path.)
                elapsed = now - last
                last = now
                if elapsed > 0.0:
                    tokens += elapsed * rate
                    if tokens > burst:
                        tokens = burst
                if tokens < 1.0:
                    limited += 1
                    if limited > burst:
                        return CloseCode.RATE_LIMITED, "rate limit exceeded"
                    await delivery.send(
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
                message = parse_text(raw)
            except ProtocolError as error:
                errors += 1
                await delivery.send(connection, error_reply(error.code, error.error, error.details))
                if has_invalid:
                    await fire.on_invalid_message(connection, raw, error)
                if errors >= max_errors:
                    return CloseCode.TOO_MANY_INVALID_MESSAGES, "too many invalid messages"
                continue
            errors = 0
            model = message.__class__
            core = core_handlers.get(model)
            if core is not None:
                await core(connection, message)
                continue
            # on_message: only the implementations that handle this type, through their plan
            # directly (this is the per-message path); a type nobody handles costs no call.
            plan = route_table.get(model)
            if plan is None:  # a model registered after set-up
                plan = plan_for(model)
            if not plan:
                continue
            replies: list[Any] | tuple[Any, ...]
            if len(plan) == 1:
                # One handler (the usual case): called as run_plan would call it, without the
                # coroutine, the loop and the list run_plan adds around it.
                step = plan[0]
                try:
                    reply = step.function(*step.pick((host, connection, message)))
                    if step.is_async or (reply is not None and awaitable(reply)):
                        reply = await reply
                except Exception as exc:
                    await self._handler_failed(
                        connection, HookError(step.plugin, "on_message", exc)
                    )
                    continue
                if reply is None:
                    continue
                replies = (reply,)
            else:
                try:
                    replies = await run_plan(plan, "on_message", (host, connection, message))
                except HookError as error:
                    await self._handler_failed(connection, error)
                    continue
            try:
                if send_hooked:
                    for reply in replies:
                        await delivery.send(connection, reply)
                else:  # no before_send/after_send: nothing to await
                    for reply in replies:
                        connection.enqueue(encode_message(reply))
            except TypeError as exc:  # not strict JSON: the handler's failure, not a bad frame
                await self._handler_failed(connection, HookError(_replier(plan), "on_message", exc))

    async def _handler_failed(self, connection: Connection, error: HookError) -> None:
        logger.error("%s", error, exc_info=error.error)
        await self._host.send(
            connection,
            error_reply(ErrorCode.HANDLER_ERROR, f"message handler failed ({error.plugin})"),
        )
        await self._host.fire.on_error(connection, error)

    async def _refresh(self, connection: Connection, message: BaseModel) -> None:
        """``{"type": "refresh", "token": ...}``: new credentials for the same user, new expiry."""
        assert isinstance(message, RefreshMessage)
        host = self._host
        try:
            verifying = host.fire.verify_token(message.token)
            identity = await host.admission.identity(verifying, "verify_token")
        except AuthenticationError as error:
            identity, reason = None, error.reason
        except (HookError, TypeError) as error:
            logger.error("refresh failed: %s", error)
            identity, reason = None, "refresh failed"
        else:
            reason = "invalid token"
        if identity is not None and identity.user_id != connection.user_id:
            identity, reason = None, "token is for another user"
        elif identity is not None and _removes_expiry(connection, identity):
            identity, reason = None, "token has no expiry"
        elif identity is not None:
            identity, reason = await self._unless_revoked(identity)
        if identity is None:
            await host.send(connection, error_reply(ErrorCode.INVALID_TOKEN, reason))
            return
        connection.metadata["identity"] = identity
        host.expiry.schedule(connection, identity.expires_at)
        await host.send(connection, {"type": "refreshed", "expires_at": identity.expires_at})

    async def _unless_revoked(self, identity: Identity) -> tuple[Identity | None, str]:
        """``identity``, or None and the reason when it is revoked (or cannot be checked)."""
        try:
            if await self._host.revocations.revoked(identity):
                return None, REVOKED
        except Exception as exc:  # fail closed: the store could not say
            logger.error("refresh failed: revocations unavailable: %s", describe_exception(exc))
            return None, "refresh failed"
        return identity, ""

    async def _already_authenticated(self, connection: Connection, message: BaseModel) -> None:
        await self._host.send(connection, error_reply(ErrorCode.FORBIDDEN, "already authenticated"))

    async def _since_out_of_place(self, connection: Connection, message: BaseModel) -> None:
        why = "since is read only as the first frame of a resume with since_frame=1"
        await self._host.send(connection, error_reply(ErrorCode.INVALID_MESSAGE, why))


def _replier(plan: Plan) -> str:
    """The plugin a reply came from (one ``on_message`` implementation), else every one."""
    return ", ".join(step.plugin for step in plan)


def _removes_expiry(connection: Connection, identity: Identity) -> bool:
    """A refresh may move a connection's expiry, never remove it (a token without ``exp``)."""
    current = connection.metadata.get("identity")
    had_expiry = isinstance(current, Identity) and current.expires_at is not None
    return had_expiry and identity.expires_at is None
