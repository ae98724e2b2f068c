"""A clock and a sleep that move only when the test moves them.

Give a ``ManualTime`` (it is the clock: calling it returns the current time) and its ``sleep`` to
code that takes ``clock=`` / ``sleep=`` arguments. A ``sleep(seconds)`` call then returns only
once the test has advanced the time past its wake-up, so a test decides exactly when each timed
step happens and never waits for real time (nor fails because a loaded machine was slow).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

__all__ = ["ManualTime"]

#: Real seconds a test waits for the code under test to reach its next sleep before failing.
REACH_TIMEOUT = 10.0


class ManualTime:
    """The current time ``now`` (seconds, any scale), and the sleeps waiting for it to move."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps = 0  # sleep() calls so far
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []  # a heap by wake-up
        self._order = itertools.count()
        self._changed: asyncio.Future[None] | None = None

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Return once the time has been advanced ``seconds`` past now."""
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), future))
        self.sleeps += 1
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        await future

    def advance(self, seconds: float) -> None:
        """Move the time on by ``seconds``; every sleep due by then returns."""
        self._move_to(self.now + seconds)

    def _move_to(self, when: float) -> None:
        self.now = when
        while self._sleepers and self._sleepers[0][0] <= when:
            future = heapq.heappop(self._sleepers)[2]
            if not future.done():
                future.set_result(None)

    def sleeping(self) -> int:
        """How many sleep() calls are waiting (a cancelled sleep no longer counts)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait (real time, at most REACH_TIMEOUT) until a sleep() call makes ``condition`` true.

        One waiter at a time: the tests drive one timed loop each."""
        try:
            async with asyncio.timeout(REACH_TIMEOUT):
                while not condition():
                    self._changed = asyncio.get_running_loop().create_future()
                    await self._changed
        except TimeoutError:
            raise AssertionError(f"timed out waiting until {what}") from None

    async def step(self) -> None:
        """Wake the next sleeper (the time moves to its wake-up) and let it run until it, or
        anything else, sleeps again: e.g. one pass of a loop that sleeps between passes."""
        await self.until(lambda: self.sleeping() > 0, "something sleeps")
        wake_at = min(when for when, _, future in self._sleepers if not future.done())
        calls = self.sleeps
        self._move_to(wake_at)
        await self.until(lambda: self.sleeps > calls, "it sleeps again")
