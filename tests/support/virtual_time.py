"""An event loop on virtual time, for code that reads the loop's own clock (``loop.time()``,
``call_at``, ``asyncio.sleep``, ``asyncio.timeout``) and so cannot be handed a fake clock.

Virtual time starts at 0 and stands still while anything is ready to run; when nothing is, it
jumps straight to the next timer. ``asyncio.sleep(5)`` returns at once in real time with exactly
5 virtual seconds passed, and timers fire in their order whatever the machine's load.

Only for code that waits on nothing but timers: with pending timers the loop never waits for a
socket, a subprocess or a thread, it jumps to the timer.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["VirtualTimeLoop", "run_in_virtual_time"]

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """Returns what is ready now; instead of waiting ``timeout`` seconds, moves the clock on."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:  # no timer at all: only a real event can wake the loop
            return super().select(None)
        ready = super().select(0)
        if not ready:
            self._loop.virtual_now += max(0.0, timeout)
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.virtual_now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.virtual_now


def run_in_virtual_time(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` to completion in a new :class:`VirtualTimeLoop`."""

    async def wrapped() -> T:
        return await main()

    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(wrapped())
