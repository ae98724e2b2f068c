"""Channel history shared by the stores: channel names, the ``pos`` splice and the in-process
history the memory store keeps.

A message published to a room or a user is on channel ``"room:<room>"`` or ``"user:<user_id>"``.
A history store gives it the channel's next offset and writes
``"pos": {"channel", "offset", "epoch"}`` into the encoded JSON object ONCE per publish
(:func:`splice_position`): every recipient, on every node, gets the same bytes, and a replay
sends exactly what was first delivered. Broadcasts, per-connection sends, binary payloads and
text that is not a JSON object get no position.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import secrets
import time
from collections import deque
from typing import Any

from netrun_ws.config import HistoryConfig
from netrun_ws.store import Envelope, HistoryRead, Position

__all__ = [
    "ROOM_PREFIX",
    "USER_PREFIX",
    "MemoryHistory",
    "check_no_position",
    "envelope_channel",
    "new_epoch",
    "position_prefix",
    "room_channel",
    "splice_position",
    "user_channel",
    "utf8_size",
]

ROOM_PREFIX = "room:"
USER_PREFIX = "user:"


def room_channel(room: str) -> str:
    return ROOM_PREFIX + room


def user_channel(user_id: str) -> str:
    return USER_PREFIX + user_id


def new_epoch() -> str:
    """A fresh random epoch: 12 URL-safe characters (``secrets.token_urlsafe(9)``'s form).

    The Redis history sends a candidate with every publish (used only when the channel has no
    epoch), so they are made 64 at a time: one ``os.urandom`` and one base64 encode for 64."""
    if not _EPOCHS:
        encoded = base64.urlsafe_b64encode(secrets.token_bytes(9 * _EPOCH_BATCH)).decode()
        # 9 bytes are exactly 12 base64 characters: each slice encodes its own 9 random bytes.
        _EPOCHS.extend(encoded[start : start + 12] for start in range(0, len(encoded), 12))
    return _EPOCHS.pop()


_EPOCH_BATCH = 64
_EPOCHS: list[str] = []
# A forked child must not hand out its parent's epochs.
os.register_at_fork(after_in_child=_EPOCHS.clear)


def envelope_channel(envelope: Envelope, config: HistoryConfig) -> str | None:
    """The channel whose history ``envelope`` goes into, or None (no position for it)."""
    payload = envelope.payload
    if envelope.target is None or not isinstance(payload, str) or not payload.startswith("{"):
        return None
    if envelope.kind == "room":
        return ROOM_PREFIX + envelope.target if config.rooms_enabled else None
    if envelope.kind == "user":
        return USER_PREFIX + envelope.target if config.users_enabled else None
    return None


def position_prefix(channel: str) -> str:
    """The start of every ``pos`` of ``channel``, up to its offset."""
    return f'{{"pos":{{"channel":{json.dumps(channel)},"offset":'


def splice_position(
    payload: str, channel: str, offset: int, epoch: str, prefix: str | None = None
) -> str:
    """``payload`` (a JSON object's text) with ``"pos"`` as its first key (``prefix``: the
    channel's :func:`position_prefix`, when the caller keeps it)."""
    head = prefix if prefix is not None else position_prefix(channel)
    rest = payload[1:]
    if rest.strip() == "}":
        return f'{head}{offset},"epoch":"{epoch}"}}}}'
    return f'{head}{offset},"epoch":"{epoch}"}},{rest}'


def utf8_size(text: str) -> int:
    """The size of ``text`` on the wire (UTF-8 bytes): what ``history.max_replay_bytes`` counts."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def check_no_position(message: Any) -> None:
    """ValueError if a room/user message already has the reserved top-level key ``pos``."""
    if isinstance(message, dict):
        reserved = "pos" in message
    else:
        fields = getattr(type(message), "model_fields", None)
        reserved = isinstance(fields, dict) and "pos" in fields
    if reserved:
        raise ValueError(
            "a room or user message may not have a top-level 'pos' key: the server writes the "
            "message's position there"
        )


#: Seconds between two sweeps of the memory history (expired entries, idle channels, sessions).
SWEEP_EVERY = 60.0


@dataclasses.dataclass(slots=True)
class _Channel:
    epoch: str
    used_at: float  # last publish or join (unix time): idle channels are dropped
    top: int = 0
    # position_prefix(channel), made at the first message (most user channels never get one).
    prefix: str | None = None
    # (offset, unix time, payload) of the last `size` messages, oldest first; None until the
    # first one (an empty deque is about 600 bytes, and most user channels never get a message).
    entries: deque[tuple[int, float, str]] | None = None


#: A session's join positions: (expires at, channel -> position), or (expires at, channel,
#: position) for a session of one channel.
_Joins = tuple[float, dict[str, Position]] | tuple[float, str, Position]


def _joined(found: _Joins) -> dict[str, Position]:
    """A new dict of the channels and positions in ``found``."""
    if len(found) == 3:
        return {found[1]: found[2]}
    return dict(found[1])


class MemoryHistory:
    """The history of one process. Channels start in the process's epoch, made when it starts,
    so a restarted node's positions are recognisably from another history.

    Memory stays bounded however many channels come and go: once a minute, entries older than
    their kind's ``ttl`` are dropped, and so is a channel idle (no message, no join) for longer
    than that ttl and the session ttl (like the Redis store's keys, no session can still resume
    from it). A channel made again after that gets a fresh epoch: its offsets start over, and a
    position from before is recognisably from a lost history."""

    def __init__(self, config: HistoryConfig, session_ttl: float) -> None:
        self.config = config
        self.epoch = new_epoch()
        #: Every fresh channel's position until a history is dropped: one object, not one each.
        self._start = Position(0, self.epoch)
        self._channels: dict[str, _Channel] = {}
        self._session_ttl = session_ttl
        # session id -> (expires at, channel -> join position), or (expires at, channel, join
        # position) while the session joined one channel (its user channel, for most): a dict
        # per session would cost more than the rest of its entry.
        self._joins: dict[str, _Joins] = {}
        self._next_sweep = time.time() + SWEEP_EVERY
        self._dropped_any = False  # from then on, a new channel may be one that was dropped

    @property
    def channel_count(self) -> int:
        """Channels held (with their top offset and recent entries)."""
        return len(self._channels)

    def _channel(self, channel: str, now: float) -> _Channel:
        state = self._channels.get(channel)
        if state is None:
            epoch = new_epoch() if self._dropped_any else self.epoch
            state = self._channels[channel] = _Channel(epoch, now)
        else:
            state.used_at = now
        return state

    def position(self, envelope: Envelope) -> Envelope:
        """``envelope`` with its next position spliced in and kept, or itself when it has none."""
        channel = envelope_channel(envelope, self.config)
        if channel is None:
            return envelope
        now = time.time()
        if now >= self._next_sweep:
            self.sweep(now)
        state = self._channel(channel, now)
        state.top += 1
        offset = state.top
        epoch = state.epoch
        text: str = envelope.payload  # type: ignore[assignment]  # a str: envelope_channel said so
        prefix = state.prefix
        if prefix is None:
            prefix = state.prefix = position_prefix(channel)
        payload = splice_position(text, channel, offset, epoch, prefix)
        entries = state.entries
        if entries is None:
            entries = state.entries = deque()
        entries.append((offset, now, payload))
        size = self.config.rooms_size if envelope.kind == "room" else self.config.users_size
        if len(entries) > size:
            entries.popleft()
        return Envelope(
            envelope.kind,
            envelope.target,
            payload,
            envelope.exclude_users,
            envelope.exclude_connections,
            Position(offset, epoch),
        )

    def top(self, channel: str) -> Position:
        """The channel's last position, the channel made if need be (so that the epoch a client
        is given stays the channel's)."""
        state = self._channel(channel, time.time())
        return Position(state.top, state.epoch)

    def _peek(self, channel: str) -> Position:
        state = self._channels.get(channel)
        if state is not None:
            return Position(state.top, state.epoch)
        # Never made, or dropped: a position from before a drop must not match.
        return Position(0, new_epoch() if self._dropped_any else self.epoch)

    def since(
        self, channel: str, since: Position, max_messages: int, max_bytes: int
    ) -> HistoryRead:
        top = self._peek(channel)  # a client's positions make no channel
        if since.epoch != top.epoch:
            return HistoryRead("epoch_changed", top)
        if since.offset > top.offset:
            return HistoryRead("out_of_history", top)  # a position this history never gave
        missed = top.offset - since.offset
        if missed == 0:
            return HistoryRead("ok", top)
        state = self._channels[channel]
        entries = state.entries or ()
        ttl = self.config.rooms_ttl if channel[0] == "r" else self.config.users_ttl
        oldest_kept = time.time() - ttl
        first = entries[0][0] if entries else top.offset + 1
        start = len(entries) - missed
        if first > since.offset + 1 or start < 0 or entries[start][1] < oldest_kept:
            return HistoryRead("out_of_history", top)
        if missed > max_messages:
            return HistoryRead("ok", top, truncated=True)
        messages: list[str] = []
        size = 0
        for index in range(start, len(entries)):
            payload = entries[index][2]
            size += utf8_size(payload)
            if size > max_bytes:
                return HistoryRead("ok", top, truncated=True)
            messages.append(payload)
        return HistoryRead("ok", top, tuple(messages))

    def record_join(self, session_id: str, channel: str) -> Position:
        now = time.time()
        if now >= self._next_sweep:
            self.sweep(now)
        state = self._channel(channel, now)  # made now: the join position has its epoch
        start = self._start
        if state.top == 0 and state.epoch is start.epoch:
            top = start  # a channel nothing was sent to yet (most user channels)
        else:
            top = Position(state.top, state.epoch)
        expires = now + self._session_ttl
        found = self._joins.get(session_id)
        if found is None or (len(found) == 3 and found[1] == channel):
            self._joins[session_id] = (expires, channel, top)
            return top
        joins = _joined(found)
        joins[channel] = top
        self._joins[session_id] = (expires, joins)
        return top

    def forget_join(self, session_id: str, channel: str) -> None:
        found = self._joins.get(session_id)
        if found is None:
            return
        if len(found) == 3:
            if found[1] == channel:
                del self._joins[session_id]
            return
        found[1].pop(channel, None)

    def session_channels(self, session_id: str) -> dict[str, Position]:
        found = self._joins.get(session_id)
        if found is None or found[0] < time.time():
            return {}
        return _joined(found)

    def sweep(self, now: float) -> None:
        """Drop expired entries, idle channels and expired sessions' join records (run at most
        once every SWEEP_EVERY seconds by publishes and joins)."""
        self._next_sweep = now + SWEEP_EVERY
        config = self.config
        idle: list[str] = []
        for name, state in self._channels.items():
            ttl = config.rooms_ttl if name[0] == "r" else config.users_ttl
            entries = state.entries
            while entries and entries[0][1] < now - ttl:
                entries.popleft()
            if entries is not None and not entries:
                state.entries = None
            if state.used_at < now - max(ttl, self._session_ttl):
                idle.append(name)
        for name in idle:
            del self._channels[name]
        self._dropped_any = self._dropped_any or bool(idle)
        for session_id in [key for key, found in self._joins.items() if found[0] < now]:
            del self._joins[session_id]
