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

import dataclasses
import json
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
]

ROOM_PREFIX = "room:"
USER_PREFIX = "user:"


def room_channel(room: str) -> str:
    return ROOM_PREFIX + room


def user_channel(user_id: str) -> str:
    return USER_PREFIX + user_id


def new_epoch() -> str:
    """A fresh random epoch: 12 URL-safe characters."""
    return secrets.token_urlsafe(9)


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


@dataclasses.dataclass(slots=True)
class _Channel:
    prefix: str  # position_prefix(channel), made once
    top: int = 0
    # (offset, unix time, payload) of the last `size` messages, oldest first.
    entries: deque[tuple[int, float, str]] = dataclasses.field(default_factory=deque)


class MemoryHistory:
    """The history of one process: every channel shares one epoch, made when it starts, so a
    restarted node's positions are recognisably from another history."""

    def __init__(self, config: HistoryConfig, session_ttl: float) -> None:
        self.config = config
        self.epoch = new_epoch()
        self._channels: dict[str, _Channel] = {}
        self._session_ttl = session_ttl
        # session id -> (expires at, channel -> join position)
        self._joins: dict[str, tuple[float, dict[str, Position]]] = {}
        self._next_prune = 0.0

    def position(self, envelope: Envelope) -> Envelope:
        """``envelope`` with its next position spliced in and kept, or itself when it has none."""
        channel = envelope_channel(envelope, self.config)
        if channel is None:
            return envelope
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel(position_prefix(channel))
        state.top += 1
        offset = state.top
        epoch = self.epoch
        text: str = envelope.payload  # type: ignore[assignment]  # a str: envelope_channel said so
        payload = splice_position(text, channel, offset, epoch, state.prefix)
        entries = state.entries
        entries.append((offset, time.time(), payload))
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
        state = self._channels.get(channel)
        return Position(state.top if state is not None else 0, self.epoch)

    def since(
        self, channel: str, since: Position, max_messages: int, max_bytes: int
    ) -> HistoryRead:
        top = self.top(channel)
        if since.epoch != self.epoch:
            return HistoryRead("epoch_changed", top)
        if since.offset > top.offset:
            return HistoryRead("out_of_history", top)  # a position this history never gave
        missed = top.offset - since.offset
        if missed == 0:
            return HistoryRead("ok", top)
        state = self._channels[channel]
        entries = state.entries
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
            size += len(payload)
            if size > max_bytes:
                return HistoryRead("ok", top, truncated=True)
            messages.append(payload)
        return HistoryRead("ok", top, tuple(messages))

    def record_join(self, session_id: str, channel: str) -> Position:
        now = time.time()
        self._prune(now)
        top = self.top(channel)
        found = self._joins.get(session_id)
        joins = found[1] if found is not None else {}
        joins[channel] = top
        self._joins[session_id] = (now + self._session_ttl, joins)
        return top

    def forget_join(self, session_id: str, channel: str) -> None:
        found = self._joins.get(session_id)
        if found is not None:
            found[1].pop(channel, None)

    def session_channels(self, session_id: str) -> dict[str, Position]:
        found = self._joins.get(session_id)
        if found is None or found[0] < time.time():
            return {}
        return dict(found[1])

    def _prune(self, now: float) -> None:
        """Drop expired sessions' join records, at most once a minute (bounded memory)."""
        if now < self._next_prune:
            return
        self._next_prune = now + 60.0
        for session_id in [key for key, (expires, _) in self._joins.items() if expires < now]:
            del self._joins[session_id]
