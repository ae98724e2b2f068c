"""Sending: one message to one connection, and envelopes to users, rooms and all, on every node.

``send`` runs the ``before_send``/``after_send`` hooks around one connection's enqueue. The
fan-out calls encode a message once into an :class:`~netrun_ws.store.Envelope` and hand it to the
store, which calls :meth:`Delivery.deliver_local` on every node; there it is framed once and the
same bytes are enqueued on each local recipient without an await. When a plugin implements
``before_send``/``after_send``, delivery goes per recipient through ``send`` instead, because the
hook may change each copy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from netrun_ws import fast_records
from netrun_ws.codes import CloseCode
from netrun_ws.history import ROOM_PREFIX, USER_PREFIX, check_no_position
from netrun_ws.identity import Identity
from netrun_ws.plugins.hooks import DROP
from netrun_ws.runtime.revocation import token_id, token_subject, user_subject
from netrun_ws.store import DeliveryGap, Envelope, Position, PublishResult
from netrun_ws.wire import encode_message, frame_size, wire_frame

if TYPE_CHECKING:
    from netrun_ws.connection import Connection
    from netrun_ws.host import Host

__all__ = ["Delivery"]

logger = logging.getLogger("netrun_ws")


class Delivery:
    """The host's sending half; ``Host.send``, ``send_to_user``, ``broadcast``, ``publish_room``
    and ``deliver_local`` are these methods."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self.delivery_gaps = 0
        self._has_before_send = False
        self._has_after_send = False
        #: channel -> session id -> positioned envelopes held back from a connection while it
        #: recovers that channel (runtime.recovery); empty almost always: one test per envelope.
        self.holding: dict[str, dict[str, list[Envelope]]] = {}
        #: Sessions whose hold buffer filled up (closed, to resume again).
        self.overflowed: set[str] = set()
        #: channel -> session id -> the last position a finished replay sent it. A message the
        #: replay read from history may still be on its way through the store's bus (another
        #: connection to Redis); its live copy, at or below this position, is dropped. The bus
        #: brings a channel's messages in offset order, so the first one above it ends the floor.
        self.floors: dict[str, dict[str, Position]] = {}

    def hooks_ready(self) -> None:
        """Read once which send hooks are implemented (after plugins are set up)."""
        fire = self._host.fire
        self._has_before_send = fire.has("before_send")
        self._has_after_send = fire.has("after_send")

    @property
    def hooked(self) -> bool:
        """True when a plugin implements ``before_send`` or ``after_send``."""
        return self._has_before_send or self._has_after_send

    async def send(self, connection: Connection | str, message: Any) -> bool:
        """Send one message to one local connection, through ``before_send``/``after_send``."""
        host = self._host
        if isinstance(connection, str):
            found = host.manager.get_connection(connection)
            if found is None:
                return False
            connection = found
        return await self._send(connection, message, first=False)

    async def send_first(self, connection: Connection, message: Any) -> bool:
        """Send ``message`` (the welcome) ahead of everything held since the connection was
        registered, then release the hold (:meth:`Connection.hold`)."""
        return await self._send(connection, message, first=True)

    async def _send(self, connection: Connection, message: Any, *, first: bool) -> bool:
        host = self._host
        if self._has_before_send:
            message = await host.fire.before_send(connection, message)
            if message is DROP:
                if first:
                    connection.release()
                return False
        frame = encode_message(message)
        if first:
            connection.release(frame)
            if connection.closed:
                return False
        elif not connection.enqueue(frame):
            return False
        if self._has_after_send:
            await host.fire.after_send(connection, message)
        return True

    async def publish(self, envelope: Envelope) -> PublishResult:
        """Deliver an envelope on this node and send it once to every other node."""
        return await self._host.store.publish(envelope)

    async def send_to_user(self, user_id: str, message: Any) -> int:
        check_no_position(message)
        result = await self.publish(fast_records.envelope("user", user_id, encode_message(message)))
        return result.local

    async def broadcast(self, message: Any, exclude_users: Iterable[str] = ()) -> int:
        sent = fast_records.envelope(
            "broadcast", None, encode_message(message), frozenset(exclude_users)
        )
        return (await self.publish(sent)).local

    async def publish_room(
        self, room: str, message: Any, exclude_connections: Iterable[str] = ()
    ) -> int:
        check_no_position(message)
        sent = fast_records.envelope(
            "room",
            room,
            encode_message(message),
            exclude_connections=frozenset(exclude_connections),
        )
        return (await self.publish(sent)).local

    def _local_targets(self, envelope: Envelope) -> list[Connection]:
        """This node's recipients of ``envelope`` (a snapshot: safe while they come and go)."""
        manager = self._host.manager
        kind, target = envelope.kind, envelope.target or ""
        excluded = envelope.exclude_connections
        if kind == "broadcast":
            users = envelope.exclude_users
            return [
                connection
                for connection in manager.connections()
                if connection.user_id not in users and connection.connection_id not in excluded
            ]
        if kind == "user":
            ids: Iterable[str] = manager.get_user_connections(target)
        elif kind == "room":
            # Not copied: live() reads it without an await, so no join or leave can interleave.
            ids = self._host.rooms.members.get(target, ())
        elif kind == "connection":
            ids = (target,)
        else:
            return []
        return manager.live(ids, excluded)

    def has_local_recipients(self, envelope: Envelope) -> bool:
        """Whether delivering ``envelope`` now could reach a connection of this node (the
        store's :data:`~netrun_ws.store.HasLocalRecipients`): False only for a user or room
        envelope none of whose targets here is live and not excluded."""
        if envelope.kind not in ("user", "room"):
            return True
        return bool(self._local_targets(envelope))

    async def deliver_local(self, envelope: Envelope) -> int:
        """Deliver an envelope to this node's connections (the store calls this on every node)."""
        if envelope.kind in ("revoke", "revoke_token"):
            reason = envelope.payload
            text = reason.decode(errors="replace") if isinstance(reason, bytes) else reason
            target = envelope.target or ""
            if envelope.kind == "revoke_token":
                self._host.revocations.closing(token_subject(target))
                return await self._revoke_token_local(target, text)
            self._host.revocations.closing(user_subject(target))
            return await self._revoke_local(target, text)
        targets = self._local_targets(envelope)
        if (self.holding or self.floors) and envelope.pos is not None:
            targets = self._hold(envelope, targets)
        if not targets:
            return 0
        delivered = 0
        if self.hooked:
            message = json.loads(envelope.payload)
            for connection in targets:
                if await self.send(connection, message):
                    delivered += 1
            return delivered
        # Encoded, framed and measured once: every recipient gets the same bytes, without an
        # await.
        payload = envelope.payload
        wire = wire_frame(payload)
        size = frame_size(payload)
        for connection in targets:
            if connection.enqueue_shared(payload, wire, size):
                delivered += 1
        return delivered

    def _hold(self, envelope: Envelope, targets: list[Connection]) -> list[Connection]:
        """Keep ``envelope`` for the targets recovering its channel, drop it for those whose
        replay sent it already; return the others."""
        prefix = ROOM_PREFIX if envelope.kind == "room" else USER_PREFIX
        channel = prefix + (envelope.target or "")
        held = self.holding.get(channel)
        floors = self.floors.get(channel)
        if not held and not floors:
            return targets
        pos = envelope.pos
        assert pos is not None  # by deliver_local
        live: list[Connection] = []
        for connection in targets:
            session_id = connection.session_id or ""
            if floors:
                floor = floors.get(session_id)
                if floor is not None:
                    if pos.epoch == floor.epoch and pos.offset <= floor.offset:
                        continue  # the replay sent it
                    del floors[session_id]  # past the replay: no earlier copy can follow
                    if not floors:
                        del self.floors[channel]
            buffer = held.get(session_id) if held else None
            if buffer is None:
                live.append(connection)
            elif len(buffer) < self._host.config.history.max_replay_messages:
                buffer.append(envelope)
            elif session_id not in self.overflowed:
                self.overflowed.add(session_id)
                self._host.recovery.overflowed(connection)
        return live

    async def _revoke_local(self, user_id: str, reason: str) -> int:
        await self._host.fire.on_user_revoked(user_id, reason)
        return await self._host.disconnect_user(user_id, CloseCode.POLICY_VIOLATION, reason)

    async def _revoke_token_local(self, token: str, reason: str) -> int:
        """Close the connections authenticated with the token named ``token`` (a token id)."""
        manager = self._host.manager
        holders = [
            connection.connection_id
            for connection in manager.connections()
            if isinstance(identity := connection.metadata.get("identity"), Identity)
            and token_id(identity) == token
        ]
        for connection_id in holders:
            await manager.disconnect(connection_id, CloseCode.POLICY_VIOLATION, reason)
        return len(holders)

    async def delivery_gap(self, gap: DeliveryGap) -> None:
        """Messages from other nodes may have been lost: say so in the log, hooks and to clients."""
        self.delivery_gaps += 1
        logger.warning(
            "delivery gap: messages from other nodes between %.3f and %.3f may be lost (%s)",
            gap.started_at,
            gap.ended_at,
            gap.reason,
        )
        await self._host.fire.on_delivery_gap(gap)
        notice = encode_message(
            {"type": "delivery_gap", "since": gap.started_at, "until": gap.ended_at}
        )
        for connection in self._host.manager.connections():
            connection.enqueue(notice)
