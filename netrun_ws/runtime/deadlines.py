"""Time limits of one fixed length for many concurrent awaits, kept on a single timer.

``asyncio.timeout()`` arms a timer and cancels it again for every use; a server that bounds
every handshake pays that on each connection. When every limit has the same length, limits
expire in the order they were set, so a FIFO of running limits and one timer for its oldest
entry are enough: finishing in time is a flag and (usually) a ``popleft``, not a timer
cancelled in the loop's heap. A limit that runs long (a client slow to send its first-message
auth) keeps the finished entries behind it queued until it ends or expires: at most
``seconds`` x the connection rate small objects.

Expiry behaves as ``asyncio.timeout()`` does: the task is cancelled, and the cancellation
comes out of :meth:`Deadlines.run` as ``TimeoutError`` (a cancellation from anywhere else stays
a cancellation).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["Deadlines"]

_T = TypeVar("_T")


class _Limit:
    __slots__ = ("deadline", "expired", "task")

    def __init__(self, deadline: float, task: asyncio.Task[Any]) -> None:
        self.deadline = deadline
        self.task: asyncio.Task[Any] | None = task  # None once the await has finished
        self.expired = False


class Deadlines:
    """Run awaits with a limit of ``seconds`` each (``TimeoutError`` past it)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._running: deque[_Limit] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        """Limits set and not yet known to be finished (for tests and introspection)."""
        return len(self._running)

    async def run(self, awaitable: Coroutine[Any, Any, _T]) -> _T:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new event loop: the old timer is gone
            self._loop, self._running, self._timer = loop, deque(), None
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        limit = _Limit(loop.time() + self.seconds, task)
        running = self._running
        running.append(limit)
        if self._timer is None:
            self._timer = loop.call_at(limit.deadline, self._expire)
        try:
            result = await awaitable
        except asyncio.CancelledError:
            if limit.expired and task.uncancel() <= cancelling:
                raise TimeoutError from None
            raise
        finally:
            limit.task = None
            while running and running[0].task is None:
                running.popleft()
        if limit.expired:  # expired just as the await finished: withdraw the cancellation
            task.uncancel()
        return result

    def _expire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        running = self._running
        now = loop.time()
        while running and (running[0].task is None or running[0].deadline <= now):
            limit = running.popleft()
            if limit.task is not None:
                limit.expired = True
                limit.task.cancel()
        if running:  # the oldest limit still running comes next
            self._timer = loop.call_at(running[0].deadline, self._expire)
