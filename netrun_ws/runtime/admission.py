"""Admitting a connection and releasing it: everything between the upgrade request and the
message loop, and the bookkeeping once the connection ends.

In order: Origin allowlist, the ``handshake`` hook, authentication (``authenticate``, or the
first message with ``server.first_message_auth``, within ``server.handshake_timeout``), the limits
(draining, node, client IP, then revocation and per user through the store, each reserved before
any await), accept, resume of a returning session, the welcome. A refusal before accept is an
HTTP status; after accept, the close code that status stands for (docs/architecture.md,
"A connection").
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from netrun_ws.codes import CloseCode, ErrorCode
from netrun_ws.connection import uuid4_hex
from netrun_ws.handshake import SUBPROTOCOL, Handshake, answered_subprotocol
from netrun_ws.history import ROOM_PREFIX, room_channel, user_channel
from netrun_ws.identity import AuthenticationError, Identity, Rejection
from netrun_ws.plugins.hooks import HookError
from netrun_ws.plugins.loading import describe_exception
from netrun_ws.runtime.auth_messages import AuthMessage
from netrun_ws.runtime.connection_records import forget, records_of
from netrun_ws.runtime.deadlines import Deadlines
from netrun_ws.runtime.recovery import SinceError, parse_since, since_positions
from netrun_ws.runtime.revocation import REVOKED
from netrun_ws.store import ConnectionRecords, Position
from netrun_ws.wire import error_reply

if TYPE_CHECKING:
    from netrun_ws.connection import Connection
    from netrun_ws.host import Host

__all__ = ["SUBPROTOCOL", "Admission", "deny"]

logger = logging.getLogger("netrun_ws")

_SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
#: The refusal of a session id bound to another user (docs/protocol.md, "Connecting").
SESSION_NOT_YOURS = "session_id belongs to another user"


async def deny(websocket: WebSocket, status: int, reason: str) -> None:
    """Refuse an upgrade before accept: HTTP ``status`` with ``{"error": reason}``, or 403 from
    ASGI servers without the denial-response extension."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse({"error": reason}, status))
    else:
        await websocket.close(code=CloseCode.POLICY_VIOLATION)


def _is_expiry(value: object) -> bool:
    """None (never expires) or a finite number of epoch seconds."""
    if value is None:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Admission:
    """Admits connections for one host and releases what each held when it ends."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._per_ip: dict[str, int] = {}
        self._checked_records: tuple[object, ConnectionRecords | None] = (None, None)
        # Every handshake gets server.handshake_timeout: one timer for all of them.
        self._deadlines = Deadlines(host.config.server.handshake_timeout)

    # ----------------------------------------------------------------- before accept

    def _origin_allowed(self, websocket: WebSocket) -> bool:
        allowed = self._host.config.server.allowed_origins
        if not allowed:
            return True
        origin = websocket.headers.get("origin")
        # Non-browser clients send no Origin; browsers always do, so a page cannot omit it.
        return origin is None or origin in allowed

    subprotocol = staticmethod(answered_subprotocol)

    async def refuse(
        self, websocket: WebSocket, status: int, reason: str, *, accepted: bool = False
    ) -> None:
        """Refuse an upgrade before accept with an HTTP status (403 where the server cannot);
        after accept (first-message auth) with the close code that status stands for."""
        logger.info("refused connection (%s): %s", status, reason)
        if accepted:
            code = CloseCode.TRY_AGAIN_LATER if status in (429, 503) else CloseCode.POLICY_VIOLATION
            await websocket.close(code=code, reason=reason[:120])
        else:
            await deny(websocket, status, reason)

    async def identity(self, result: Any, hook: str) -> Identity | None:
        """The Identity an ``authenticate``/``verify_token`` call returned.

        Raises AuthenticationError for a refusal, HookError/TypeError for a broken plugin.
        """
        try:
            identity = await result
        except HookError as error:
            if isinstance(error.error, AuthenticationError):
                raise error.error from None  # a refusal, not a plugin failure
            raise
        if identity is not None and not isinstance(identity, Identity):
            raise TypeError(f"{hook} returned {type(identity).__name__}, not Identity")
        # A finite float (what the JWT plugin gives) passes without a call of _is_expiry.
        if (
            identity is not None
            and not (type(expires := identity.expires_at) is float and math.isfinite(expires))
            and not _is_expiry(expires)
        ):
            # A string or NaN would start no timer, infinity one that never fires.
            raise TypeError(f"{hook} returned an Identity whose expires_at is not a finite number")
        return identity

    async def admit(self, websocket: WebSocket) -> tuple[Identity, bool] | None:
        """Origin, ``handshake``, authentication. Returns the identity and whether the socket was
        already accepted (first-message auth), or None when the client was refused."""
        host = self._host
        if not self._origin_allowed(websocket):
            origin = websocket.headers.get("origin")
            await self.refuse(websocket, 403, f"origin {origin!r} not allowed")
            return None
        try:
            rejection = await host.fire.handshake(websocket)
        except HookError as error:
            logger.error("%s", error)
            await websocket.close(code=CloseCode.INTERNAL_ERROR)
            return None
        if isinstance(rejection, Rejection):
            await self.refuse(websocket, 403, rejection.reason)
            return None
        deadlines = self._deadlines
        accepted = False
        try:
            authenticating = self.identity(host.fire.authenticate(websocket), "authenticate")
            identity = await deadlines.run(authenticating)
            if identity is None and host.config.server.first_message_auth:
                await websocket.accept(subprotocol=self.subprotocol(websocket))
                accepted = True
                identity = await deadlines.run(self._first_message_auth(websocket))
            if identity is None:
                raise AuthenticationError("authentication required")
            return identity, accepted
        except AuthenticationError as error:
            reason, code = error.reason, CloseCode.POLICY_VIOLATION
            if error.status is not None and not accepted:
                await self.refuse(websocket, error.status, reason)
                await host.fire.on_auth_refused(Handshake.of(websocket), reason, error.status)
                return None
        except TimeoutError:
            reason, code = "authentication timeout", CloseCode.POLICY_VIOLATION
        except (HookError, TypeError) as error:
            logger.error("authentication failed: %s", error)
            reason, code = "authentication error", CloseCode.INTERNAL_ERROR
        except WebSocketDisconnect:
            return None  # the client left while authenticating
        if not accepted:
            await websocket.accept(subprotocol=self.subprotocol(websocket))
        await websocket.close(code=code, reason=reason[:120])
        await host.fire.on_auth_refused(Handshake.of(websocket), reason, code)
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
        verifying = self._host.fire.verify_token(message.token)
        identity = await self.identity(verifying, "verify_token")
        if identity is None:
            raise AuthenticationError("invalid token")
        return identity

    # ----------------------------------------------------------------- limits and accept

    async def open(
        self, websocket: WebSocket, identity: Identity, accepted: bool
    ) -> Connection | None:
        """Count the connection (node, client IP and, through the store, cluster-wide per-user
        limits), then accept it. Returns None when refused."""
        host = self._host
        limits = host.config.limits
        if host.draining:
            await self.refuse(websocket, 503, "server restarting", accepted=accepted)
            return None
        if len(host.manager) >= limits.max_connections:
            reason = f"max_connections ({limits.max_connections}) reached"
            await self.refuse(websocket, 503, reason, accepted=accepted)
            return None
        # The scope's (host, port), as Starlette's ``client`` reads it: that property builds an
        # Address tuple at each read (about 8,000 instructions for the two a check took).
        client = websocket.scope.get("client")
        ip = client[0] if client is not None else "unknown"
        if self._per_ip.get(ip, 0) >= limits.max_connections_per_ip:
            reason = f"max_connections_per_ip ({limits.max_connections_per_ip}) reached"
            await self.refuse(websocket, 429, reason, accepted=accepted)
            return None
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1  # reserved before any await
        connection = None
        try:
            connection = await self._open_counted(websocket, identity, accepted, ip)
        finally:  # refused, the client gone, or cancelled: the slot is free again
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
        host = self._host
        limits = host.config.limits
        # Most connections carry no query string: skip parsing one then.
        query = websocket.scope.get("query_string", b"")
        requested = websocket.query_params.get("session_id") if query else None
        resuming = bool(requested and _SESSION_ID.match(requested))
        session_id = requested if requested and resuming else uuid4_hex()
        user_id = identity.user_id
        since: dict[str, Position] | None = None
        raw_since = websocket.query_params.get("since") if query else None
        if raw_since is not None:
            try:
                since = parse_since(raw_since, host.config.history.max_since_channels)
            except SinceError as error:
                await self.refuse(websocket, 400, f"invalid since: {error}", accepted=accepted)
                return None
        if resuming and not self._local_holder_is(session_id, user_id):
            await self.refuse(websocket, 403, SESSION_NOT_YOURS, accepted=accepted)
            return None
        checked_at = time.monotonic()
        try:
            # Revocations, the session's binding to its first user (nobody else resumes or
            # replaces it, on any node), its record, the per-user count: one store call.
            store_id, refusal = await self._records().open_connection(
                session_id,
                user_id,
                identity.username or user_id,
                limits.max_connections_per_user,
                host.revocations.checks_when_read(identity),
            )
        except Exception as exc:  # nothing of the connection stays registered
            logger.error("store unavailable at connect: %s", describe_exception(exc))
            await self.refuse(websocket, 503, "session store unavailable", accepted=accepted)
            return None
        if refusal is not None:
            if refusal == "user_limit":
                reason = f"max_connections_per_user ({limits.max_connections_per_user}) reached"
                await self.refuse(websocket, 429, reason, accepted=accepted)
            else:
                reason = REVOKED if refusal == "revoked" else SESSION_NOT_YOURS
                await self.refuse(websocket, 403, reason, accepted=accepted)
            return None
        assert store_id is not None  # created whenever nothing was refused
        metadata: dict[str, Any] = {
            "identity": identity,
            "state": {},  # "rooms" is created by Rooms.of() when first needed
            "store_connection_id": store_id,
            "resuming": resuming,
            "ip": ip,
            "revocation_checked_at": checked_at,
        }
        recovery = host.recovery
        # Live messages of a resuming session wait until its replay is sent (runtime.recovery),
        # from before the connection is registered and can receive them.
        recovering = resuming and recovery.history is not None
        user_hold = None
        if recovering:
            metadata["recovering"] = True
            metadata["since"] = since
            # More channels than fit in a URL: the positions come as the first frame.
            if query and websocket.query_params.get("since_frame") == "1":
                metadata["since_frame"] = True
            if host.config.history.users_enabled:
                user_hold = user_channel(user_id)
                metadata["holds"] = {user_hold}
                recovery.hold(session_id, user_hold)
        try:
            # A client resuming its session id replaces a connection that has not noticed yet.
            connection_id = await host.manager.connect(
                websocket,
                user_id,
                session_id=session_id,
                metadata=metadata,
                accept=not accepted,
                subprotocol=self.subprotocol(websocket),
                replace_session=True,
            )
        except BaseException as error:
            # Refused (a ValueError), the client gone before accept, or cancelled: nothing of
            # this connection stays in the store or the recovery holds.
            if user_hold is not None:
                recovery.release(session_id, user_hold)
            await forget(self._host.store, store_id, user_id)
            if not isinstance(error, Exception):
                raise
            if not isinstance(error, ValueError):
                logger.info("client left before accept: %s", describe_exception(error))
                return None
            logger.info("refused connection: %s", error)
            if websocket.application_state == WebSocketState.CONNECTING:  # never left hanging
                await self.refuse(websocket, 503, "connection refused")
            return None
        connection = host.manager.get_connection(connection_id)
        if connection is not None:
            connection.hold()  # the welcome goes first (welcome() releases what waits behind it)
        return connection

    def _local_holder_is(self, session_id: str, user_id: str) -> bool:
        """False when a live connection of another user holds ``session_id`` on this node."""
        holder = self._host.manager.get_connection(session_id)
        return holder is None or holder.session_id != session_id or holder.user_id == user_id

    def _records(self) -> ConnectionRecords:
        """The store's merged open and close calls, or ones built from its older calls (a
        runtime-checkable Protocol walks its members: decided once per store)."""
        # The host's store read from its slot, not its property (a Python call from C); before
        # start the property raises as it did.
        store = self._host._store
        if store is None:
            store = self._host.store
        checked, records = self._checked_records
        if store is not checked or records is None:
            records = records_of(store)
            self._checked_records = (store, records)
        return records

    # ----------------------------------------------------------------- after accept

    async def welcome(self, connection: Connection, identity: Identity) -> tuple[int, str] | None:
        """Resume a returning session (state, rooms), send the welcome, then recover what it
        missed. Returns the close code and reason when the client left meanwhile, else None."""
        resumed = await self._resume(connection)
        recovery = self._host.recovery
        positions = await recovery.welcome_positions(connection)
        welcome: dict[str, Any] = {}
        for payload in await self._host.fire.welcome_payload(connection):
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
            welcome["rooms"] = sorted(self._host.rooms.of(connection))
        if positions:
            welcome["positions"] = {
                channel: position.as_dict() for channel, position in positions.items()
            }
            # How many channels a resume's `since` may name here: clients cut theirs to it, or
            # send them all in a `since` frame (this server reads one: `since_frame`).
            welcome["max_since_channels"] = self._host.config.history.max_since_channels
            welcome["since_frame"] = True
        await self._host.delivery.send_first(connection, welcome)
        if connection.metadata.get("recovering"):
            if connection.metadata.pop("since_frame", False):
                ended = await self._read_since_frame(connection)
                if ended is not None:
                    return ended
            # Recovery when there is something to recover from: a resumed session or a `since`.
            if resumed or connection.metadata.get("since") is not None:
                await recovery.recover(connection, positions)
            else:
                await recovery.finish(connection, positions)
        return None

    async def _read_since_frame(self, connection: Connection) -> tuple[int, str] | None:
        """The first frame of a resume that asked for it (``since_frame=1``): its positions
        join those of the URL's ``since`` (the frame's win). A bad one gets an error reply and
        recovery goes on from what the server has (nothing is lost: channels left out replay
        from where the session joined them); a frame that is not a ``since`` one is the message
        loop's first. Returns the close code and reason when the client left meanwhile."""
        host = self._host
        timeout = host.config.server.handshake_timeout
        try:
            async with asyncio.timeout(timeout):
                frame = await connection.websocket.receive()
        except TimeoutError:
            why = f"no since frame within {timeout:g} s"
            await host.send(connection, error_reply(ErrorCode.INVALID_MESSAGE, why))
            return None
        if frame["type"] == "websocket.disconnect":
            return frame.get("code", 1005), frame.get("reason") or ""
        text = frame.get("text")
        try:
            value = json.loads(text) if text is not None else None
        except ValueError:
            value = None
        if not isinstance(value, dict) or value.get("type") != "since":
            connection.metadata["unread"] = frame
            return None
        try:
            if set(value) != {"type", "channels"}:
                raise SinceError('expected {"type": "since", "channels": {...}}')
            positions = since_positions(value["channels"], None)
        except SinceError as error:
            await host.send(
                connection, error_reply(ErrorCode.INVALID_MESSAGE, f"invalid since: {error}")
            )
            return None
        metadata = connection.metadata
        metadata["since"] = {**(metadata.get("since") or {}), **positions}
        return None

    async def _resume(self, connection: Connection) -> bool:
        """A client returning with its session id gets its saved state back and rejoins rooms:
        those saved at its last disconnect and those its history join records name (kept at
        each join and leave, so they survive a node killed without a disconnect)."""
        if not connection.metadata.get("resuming"):
            return False
        host = self._host
        history = host.recovery.history
        try:
            state = await host.store.sessions.restore_connection_state(
                connection.metadata["store_connection_id"]
            )
            joins: dict[str, Position] = {}
            if history is not None and connection.session_id is not None:
                joins = await history.session_channels(connection.session_id)
        except Exception as exc:
            logger.error("session store failed on resume: %s", describe_exception(exc))
            return False
        connection.metadata["joins"] = joins
        rooms = [room for room in (state or {}).get("rooms", ()) if isinstance(room, str)]
        rooms += [
            channel[len(ROOM_PREFIX) :] for channel in joins if channel.startswith(ROOM_PREFIX)
        ]
        if not state and not rooms:
            return False
        data = (state or {}).get("data")
        connection.metadata["state"] = data if isinstance(data, dict) else {}
        recovering = connection.metadata.get("recovering") and host.config.history.rooms_enabled
        for room in dict.fromkeys(rooms):
            if recovering:
                host.recovery.start_holding(connection, room_channel(room))
            # The session's first join position stays where recovery starts; a room without one
            # (saved before it had a record) gets one now.
            record = room_channel(room) not in joins
            if not await host.rooms.join(connection, room, record=record) and recovering:
                host.recovery.release(connection.session_id or "", room_channel(room))
        return True

    # ----------------------------------------------------------------- release

    async def closed(self, connection: Connection, code: int, reason: str) -> None:
        """Called once per connection by the manager, whatever closed it: leave rooms, save the
        session (so the client can resume on any node), release the limits, ``on_disconnect``."""
        host = self._host
        host.expiry.cancel(connection)
        host.recovery.release_all(connection)
        ip = connection.metadata.get("ip")
        if ip is not None:
            self._release_ip(ip)
        rooms = sorted(host.rooms.joined(connection))
        for room in rooms:
            await host.rooms.remove(connection, room)
        store_id = connection.metadata.get("store_connection_id")
        if store_id is not None and host.started:
            state = {"rooms": rooms, "data": connection.metadata.get("state", {})}
            try:
                # The session claimed again (its binding may have expired during a long
                # connection), its state saved, the record and the count released: one call.
                if not await self._records().close_connection(
                    store_id, connection.session_id, connection.user_id, state
                ):
                    logger.info("session state not saved: another user's session, or no record")
            except Exception as exc:
                logger.error("session store failed on close: %s", describe_exception(exc))
        await host.fire.on_disconnect(connection, code, reason)
