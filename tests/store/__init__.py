"""Tests of the Store implementations (memory and Redis), and what they share.

``Recorder`` stands in for the host: it is the ``deliver`` and ``on_gap`` a store is started
with, and records what it was given so a test can wait for it (always with a deadline).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from netrun_ws.store import DeliveryGap, Envelope

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


async def eventually(
    check: Callable[[], Awaitable[Any]] | Callable[[], Any],
    *,
    timeout: float = 5.0,
    interval: float = 0.02,
    what: str = "condition",
) -> float:
    """Poll ``check`` (sync or async) until truthy; return the seconds it took.

    Fails the test after ``timeout`` seconds, naming ``what``.
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g}s")
        await asyncio.sleep(interval)
