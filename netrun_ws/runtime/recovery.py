"""Recovery of a resuming session: the ``since`` query parameter, the welcome's positions, the
replay of missed messages, ``gap`` and ``recovered`` (docs/protocol.md, "Recovery").

While a connection recovers a channel, live messages of that channel for it are held in
:attr:`Delivery.holding <netrun_ws.runtime.delivery.Delivery.holding>` (from before it can
receive them) and released after the replay, only those the replay did not cover; a live copy
of what the replay sent that arrives later still (it was on the store's bus while history was
read) is dropped by :attr:`Delivery.floors <netrun_ws.runtime.delivery.Delivery.floors>`:
nothing overtakes the replay, nothing arrives twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from netrun_ws.codes import CloseCode
from netrun_ws.history import ROOM_PREFIX, USER_PREFIX, room_channel, user_channel, utf8_size
from netrun_ws.store import Envelope, HistoryStore, Position
from netrun_ws.wire import encode_message

if TYPE_CHECKING:
    from netrun_ws.connection import Connection
    from netrun_ws.host import Host

__all__ = [
    "MAX_SINCE_CHANNEL",
    "REPLAY_DRAIN_TIMEOUT",
    "Recovery",
    "SinceError",
    "parse_since",
    "since_positions",
]

logger = logging.getLogger("netrun_ws")

#: Longest wait for a recovering client to read half its send queue before more is queued.
REPLAY_DRAIN_TIMEOUT = 10.0
#: Longest channel name accepted in ``since``.
MAX_SINCE_CHANNEL = 300
_MAX_EPOCH = 64
_MAX_OFFSET = 2**53  # what a JavaScript client can hold exactly
# Characters of `since` allowed per channel it may name (name, offset, epoch and punctuation).
_CHARS_PER_CHANNEL = MAX_SINCE_CHANNEL + _MAX_EPOCH + 60


class SinceError(ValueError):
    """A malformed ``since``; the message says why (sent as ``invalid since: <why>``)."""


def parse_since(raw: str, max_channels: int) -> dict[str, Position]:
    """``{"room:lobby": {"offset": 17, "epoch": "k3"}, ...}`` -> channel -> Position."""
    if len(raw) > max_channels * _CHARS_PER_CHANNEL + 2:
        raise SinceError("too long")
    try:
        value = json.loads(raw)
    except ValueError:
        raise SinceError("not JSON") from None
    return since_positions(value, max_channels)


def since_positions(value: Any, max_channels: int | None) -> dict[str, Position]:
    """The positions of a decoded ``since`` object (None: as many channels as it names, for the
    ``since`` frame, which the frame size bounds)."""
    if not isinstance(value, dict):
        raise SinceError("not a JSON object of channel -> {offset, epoch}")
    if max_channels is not None and len(value) > max_channels:
        raise SinceError(f"more than {max_channels} channels")
    found: dict[str, Position] = {}
    for channel, position in value.items():
        name = repr(channel[:40])
        if not channel.startswith((ROOM_PREFIX, USER_PREFIX)) or len(channel) > MAX_SINCE_CHANNEL:
            raise SinceError(f"channel {name} is not room:<room> or user:<user_id>")
        if not isinstance(position, dict) or set(position) != {"offset", "epoch"}:
            raise SinceError(f"channel {name}: expected exactly offset and epoch")
        offset, epoch = position["offset"], position["epoch"]
        if (
            not isinstance(offset, int)
            or isinstance(offset, bool)
            or not 0 <= offset <= _MAX_OFFSET
        ):
            raise SinceError(f"channel {name}: offset is not an integer >= 0")
        if not isinstance(epoch, str) or not 0 < len(epoch) <= _MAX_EPOCH:
            raise SinceError(f"channel {name}: epoch is not a string of 1 to {_MAX_EPOCH} chars")
        found[channel] = Position(offset, epoch)
    return found


class Recovery:
    """The host's recovery: holds, welcome positions, replay."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._closing: set[asyncio.Task[None]] = set()
        # The store last checked and its history: isinstance against a runtime-checkable
        # Protocol walks its members, too slow to repeat on every connection.
        self._checked: tuple[object, HistoryStore | None] = (None, None)

    @property
    def history(self) -> HistoryStore | None:
        """The store's history, or None (a store without it, or before start)."""
        # The host's store read from its slot: its ``started`` and ``store`` properties are two
        # Python calls from C (about 3,000 instructions per connection).
        store = self._host._store
        if store is None:
            return None
        checked, history = self._checked
        if store is not checked:
            history = store if isinstance(store, HistoryStore) else None
            self._checked = (store, history)
        return history

    # ------------------------------------------------------------------ holds

    def hold(self, session_id: str, channel: str) -> None:
        """From now on, live messages of ``channel`` for ``session_id`` wait in a buffer."""
        held = self._host.delivery.holding.setdefault(channel, {})
        held.setdefault(session_id, [])

    def release(self, session_id: str, channel: str) -> list[Envelope]:
        """Stop holding; return what was held."""
        holding = self._host.delivery.holding
        held = holding.get(channel)
        if held is None:
            return []
        envelopes = held.pop(session_id, [])
        if not held:
            del holding[channel]
        return envelopes

    def release_all(self, connection: Connection) -> None:
        """Drop every hold and floor of a closing connection."""
        channels = connection.metadata.pop("holds", None)
        floored = connection.metadata.pop("floors", None)
        session_id = connection.session_id
        if session_id is None:
            return
        self._host.delivery.overflowed.discard(session_id)
        for channel in channels or ():
            self.release(session_id, channel)
        for channel in floored or ():
            self._drop_floor(session_id, channel)

    def _drop_floor(self, session_id: str, channel: str) -> None:
        floors = self._host.delivery.floors
        found = floors.get(channel)
        if found is not None:
            found.pop(session_id, None)
            if not found:
                del floors[channel]

    def start_holding(self, connection: Connection, channel: str) -> None:
        session_id = connection.session_id
        if session_id is None:
            return
        self.hold(session_id, channel)
        connection.metadata.setdefault("holds", set()).add(channel)

    # ------------------------------------------------------------------ welcome

    async def welcome_positions(self, connection: Connection) -> dict[str, Position]:
        """The top of the connection's user channel and of every room it is in; a new session
        records its user channel's join position here (where a later resume starts from)."""
        history = self.history
        if history is None:
            return {}
        config = self._host.config.history
        positions: dict[str, Position] = {}
        session_id = connection.session_id
        if config.users_enabled:
            channel = user_channel(connection.user_id)
            if connection.metadata.get("recovering") or session_id is None:
                positions[channel] = await history.history_top(channel)
            else:
                positions[channel] = await history.record_join(session_id, channel)
        if config.rooms_enabled:
            for room in sorted(self._host.rooms.joined(connection)):
                channel = room_channel(room)
                positions[channel] = await history.history_top(channel)
        return positions

    # ------------------------------------------------------------------ replay

    async def recover(self, connection: Connection, positions: dict[str, Position]) -> None:
        """Replay what the client missed on each channel, then the gaps, then ``recovered``;
        then release the held live messages the replay did not cover."""
        history = self.history
        holds: set[str] = connection.metadata.get("holds", set())
        if history is None:
            return
        config = self._host.config.history
        since: dict[str, Position] = connection.metadata.pop("since", None) or {}
        joins: dict[str, Position] = connection.metadata.pop("joins", None) or {}
        messages_left, bytes_left = config.max_replay_messages, config.max_replay_bytes
        recovered: dict[str, dict[str, Any]] = {}
        gaps: list[dict[str, Any]] = []
        last: dict[str, Position] = dict(positions)
        for channel in positions:
            start = since.get(channel) or joins.get(channel)
            if start is None:
                continue  # nothing to recover from: live from the welcome's position
            read = await history.history_since(channel, start, messages_left, bytes_left)
            last[channel] = read.top
            if read.status != "ok" or read.truncated:
                reason = "replay_limit" if read.status == "ok" else read.status
                gaps.append(
                    {"type": "gap", "channel": channel, "reason": reason, **read.top.as_dict()}
                )
                recovered[channel] = {**read.top.as_dict(), "replayed": 0}
                continue
            for payload in read.messages:
                await self._send(connection, payload)
                messages_left -= 1
                bytes_left -= utf8_size(payload)
            recovered[channel] = {**read.top.as_dict(), "replayed": len(read.messages)}
        for gap in gaps:
            await self._send(connection, encode_message(gap))
        await self._send(connection, encode_message({"type": "recovered", "channels": recovered}))
        await self._flush(connection, holds, last, floors=set(recovered))

    async def finish(self, connection: Connection, positions: dict[str, Position]) -> None:
        """No recovery after all: release what was held after the welcome's positions."""
        connection.metadata.pop("since", None)
        connection.metadata.pop("joins", None)
        await self._flush(connection, connection.metadata.get("holds", set()), positions)

    async def _flush(
        self,
        connection: Connection,
        holds: set[str],
        last: dict[str, Position],
        floors: Collection[str] = (),
    ) -> None:
        session_id = connection.session_id or ""
        holding = self._host.delivery.holding
        for channel in sorted(holds):
            after = last.get(channel)
            while True:
                held = holding.get(channel, {}).get(session_id)
                if not held:
                    break
                pending = held[:]
                held.clear()
                for envelope in pending:
                    pos = envelope.pos
                    if after is not None and pos is not None:
                        if pos.epoch == after.epoch and pos.offset <= after.offset:
                            continue  # the replay sent it already
                    await self._send(connection, envelope.payload)
            if session_id in self._host.delivery.overflowed:
                return  # being closed; closing releases the holds
            # No await between the last (empty) check and the release: nothing slips past.
            self.release(session_id, channel)
            if after is not None and session_id and channel in floors:
                # What the replay read may still come from the bus: drop it then (Delivery.floors).
                self._host.delivery.floors.setdefault(channel, {})[session_id] = after
                connection.metadata.setdefault("floors", set()).add(channel)
        connection.metadata.pop("holds", None)

    async def _send(self, connection: Connection, payload: str | bytes) -> None:
        # A replay may be far longer than the send queue: let the socket drain at half full
        # instead of closing the client as a slow consumer (a client that does not read at all
        # still hits the queue's limit once the wait times out).
        if connection.queue_length >= max(1, connection.maxsize // 2):
            await connection.flush(REPLAY_DRAIN_TIMEOUT)
        delivery = self._host.delivery
        if delivery.hooked and isinstance(payload, str):
            await delivery.send(connection, json.loads(payload))
        else:
            connection.enqueue(payload)

    def overflowed(self, connection: Connection) -> None:
        """Too much was held while ``connection`` recovered: close it (the client resumes again
        from what it has; nothing is skipped)."""
        logger.info(
            "connection %s: too many live messages during recovery", connection.connection_id
        )
        task = asyncio.get_running_loop().create_task(
            self._host.disconnect(connection, CloseCode.TRY_AGAIN_LATER, "recovery overflow")
        )
        self._closing.add(task)  # a reference until it is done
        task.add_done_callback(self._closing.discard)
