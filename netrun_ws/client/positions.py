"""The last position the client received on each channel: resume requests and duplicate drops.

The wire contract (docs/protocol.md, "Positions and recovery"): a channel message carries
``"pos": {"channel", "offset", "epoch"}``; offsets grow by one per message within an epoch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

#: The most channels a resume's ``since`` names: the server's default
#: ``history.max_since_channels`` (more is refused with HTTP 400).
MAX_SINCE_CHANNELS = 100


@dataclass(frozen=True, slots=True)
class Position:
    offset: int
    epoch: str

    @classmethod
    def parse(cls, raw: object) -> Position | None:
        """A position from its JSON form, or None when it is not one."""
        if not isinstance(raw, Mapping):
            return None
        offset, epoch = raw.get("offset"), raw.get("epoch")
        if isinstance(offset, bool) or not isinstance(offset, int) or not isinstance(epoch, str):
            return None
        return cls(offset, epoch)


class Positions:
    """Per channel, the last position received (or the server said the channel continues from)."""

    def __init__(self) -> None:
        self._last: dict[str, Position] = {}

    def get(self, channel: str) -> Position | None:
        return self._last.get(channel)

    def snapshot(self) -> dict[str, Position]:
        return dict(self._last)

    def set(self, channel: str, position: Position) -> None:
        self._last[channel] = position

    def forget_all_but(self, channels: Mapping[str, object]) -> list[str]:
        """Forget every channel not in ``channels``; return those forgotten, sorted."""
        gone = sorted(c for c in self._last if c not in channels)
        for channel in gone:
            del self._last[channel]
        return gone

    def accept(self, message: Mapping[str, Any]) -> tuple[bool, Position | None]:
        """Whether ``message`` is new, and the previous position when its epoch changed.

        A message without a (well-formed) ``pos`` is always new. One whose offset is at or below
        the last one of the same epoch is a duplicate (a replay overlapping live delivery).
        """
        raw = message.get("pos")
        if not isinstance(raw, Mapping):
            return True, None
        channel = raw.get("channel")
        position = Position.parse(raw)
        if not isinstance(channel, str) or position is None:
            return True, None
        last = self._last.get(channel)
        if last is not None and last.epoch == position.epoch and position.offset <= last.offset:
            return False, None
        self._last[channel] = position
        changed = last if last is not None and last.epoch != position.epoch else None
        return True, changed

    def fit_in_url(self, budget: int, max_channels: int = MAX_SINCE_CHANNELS) -> bool:
        """Whether every channel fits in a ``since`` of ``budget`` form-encoded characters
        naming at most ``max_channels``."""
        chosen = sorted(self._last.items())
        return len(chosen) <= max_channels and len(quote_plus(_since_json(chosen))) <= budget

    def since_frame(self) -> str:
        """The ``{"type": "since", "channels": ...}`` frame naming every channel (a resume
        request with ``since_frame=1`` sends it first)."""
        channels = {
            c: {"offset": p.offset, "epoch": p.epoch} for c, p in sorted(self._last.items())
        }
        return json.dumps({"type": "since", "channels": channels}, separators=(",", ":"))

    def since_param(
        self, budget: int | None = None, max_channels: int = MAX_SINCE_CHANNELS
    ) -> str | None:
        """The ``since`` query value of a resume request, None when nothing is tracked.

        ``budget``: the most characters it may take in the URL, form-encoded; ``max_channels``:
        the most channels it may name. When every channel does not fit, those with the highest
        offsets go first (the server replays a channel left out from where the session joined
        it: at most its offset's worth, and the client drops what it already has)."""
        if not self._last:
            return None
        chosen = sorted(self._last.items())
        fits = len(chosen) <= max_channels
        if not fits or (budget is not None and len(quote_plus(_since_json(chosen))) > budget):
            room = budget if budget is not None else math.inf
            by_offset = sorted(chosen, key=lambda item: (-item[1].offset, item[0]))
            chosen, used = [], len(quote_plus("{}"))
            for channel, position in by_offset[:max_channels]:
                size = len(quote_plus(_since_json([(channel, position)]))) - len(quote_plus("{}"))
                if used + size + len(quote_plus(",")) > room:
                    break
                chosen.append((channel, position))
                used += size + len(quote_plus(","))
            if not chosen:
                return None
            chosen.sort()
        return _since_json(chosen)


def _since_json(channels: list[tuple[str, Position]]) -> str:
    body = {c: {"offset": p.offset, "epoch": p.epoch} for c, p in channels}
    return json.dumps(body, separators=(",", ":"))
