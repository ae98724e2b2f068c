"""Tests of the Store implementations (memory and Redis), and what they share.

``Recorder`` stands in for the host: it is the ``deliver`` and ``on_gap`` a store is started
with, and records what it was given so a test can wait for it (always with a deadline).
"""

from __future__ import annotations

from netrun_ws.store import DeliveryGap, Envelope
from tests.support.waiting import eventually

__all__ = ["Recorder", "eventually"]


class Recorder:
    """The host's side of a store: ``deliver`` returns ``reach`` and records each envelope."""

    def __init__(self, reach: int = 1, fail_first: int = 0) -> None:
        self.reach = reach
        self.envelopes: list[Envelope] = []
        self.gaps: list[DeliveryGap] = []
        self._failures_left = fail_first

    async def deliver(self, envelope: Envelope) -> int:
        if self._failures_left:
            self._failures_left -= 1
            raise RuntimeError("deliver failed on purpose")
        self.envelopes.append(envelope)
        return self.reach

    async def on_gap(self, gap: DeliveryGap) -> None:
        self.gaps.append(gap)

    def payloads(self) -> list[str | bytes]:
        return [envelope.payload for envelope in self.envelopes]
