"""Many long per-connection timers on one event-loop timer: ``call_later`` without a handle each.

Every idle connection waits on two long timers: its next keepalive ping and its token's expiry;
every new one on its request deadline (``transport/guard.py``), cancelled once it upgrades.
As event-loop timers they cost about 450-600 bytes each (the loop's handle, its timer, a copied
context, the bound callback and its arguments); here each is a small :class:`Timer` in a heap,
and one loop timer is armed for the earliest of them. A timer fires when the loop's would (its
time reached, in order of time, then of scheduling). Cancelled timers stay in the heap until
their time comes, or until they are a quarter of it, when the heap is rebuilt without them
(each idle connection keeps two live timers, and every connection cancels its request deadline
at the upgrade: after a burst of connects, a cancelled deadline would otherwise stay for the
whole request timeout, about 120 bytes each; rebuilding costs the entries it keeps, at most three
for every one it drops).

For timers that are mostly cancelled or long: a short, busy one is better left to the loop.
"""

from __future__ import annotations

import asyncio
import heapq
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["Timer", "TimerHeap", "timers_for"]

#: Fire what is due within this many seconds of now: the loop may run a timer a little early
#: (its clock resolution), and the heap's earliest entry must then not be left for a new timer.
_RESOLUTION = 0.001
#: Below this many entries the heap is never rebuilt (cancelled entries cost little).
_COMPACT_MIN = 64


class Timer:
    """One scheduled call; :meth:`cancel` it as a loop ``TimerHandle``."""

    __slots__ = ("_arg", "_callback", "_heap", "_seq", "when")

    def __init__(
        self, when: float, callback: Callable[[Any], object], arg: Any, heap: TimerHeap, seq: int
    ) -> None:
        self.when = when
        self._seq = seq  # ties in time fire in the order they were scheduled
        self._callback: Callable[[Any], object] | None = callback
        self._arg = arg
        self._heap = heap

    def __lt__(self, other: Timer) -> bool:
        # The heap orders the timers themselves: a (when, seq, timer) tuple per entry would cost
        # each idle connection about 150 bytes more.
        when = self.when
        return when < other.when or (when == other.when and self._seq < other._seq)

    def cancel(self) -> None:
        if self._callback is not None:
            self._callback = self._arg = None
            self._heap._cancelled += 1

    def cancelled(self) -> bool:
        return self._callback is None


class TimerHeap:
    """The timers of one event loop (:func:`timers_for`)."""

    __slots__ = ("__weakref__", "_armed_at", "_cancelled", "_handle", "_heap", "_loop", "_seq")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[Timer] = []
        self._seq = 0
        self._cancelled = 0
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0

    def __len__(self) -> int:
        """Timers scheduled and not yet fired or cancelled."""
        return len(self._heap) - self._cancelled

    def call_later(self, delay: float, callback: Callable[[Any], object], arg: Any) -> Timer:
        """Call ``callback(arg)`` in ``delay`` seconds, as ``loop.call_later`` would."""
        when = self._loop.time() + max(0.0, delay)
        self._seq += 1
        timer = Timer(when, callback, arg, self, self._seq)
        heapq.heappush(self._heap, timer)
        if self._handle is None or when < self._armed_at:
            self._arm(when)
        if self._cancelled > _COMPACT_MIN and self._cancelled * 4 > len(self._heap):
            self._compact()
        return timer

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(when, self._fire)
        self._armed_at = when

    def _compact(self) -> None:
        self._heap = [timer for timer in self._heap if timer._callback is not None]
        heapq.heapify(self._heap)
        self._cancelled = 0

    def _fire(self) -> None:
        self._handle = None
        due = self._loop.time() + _RESOLUTION
        # self._heap each time: a callback may schedule (and so rebuild) it.
        while self._heap and self._heap[0].when <= due:
            timer = heapq.heappop(self._heap)
            callback, arg = timer._callback, timer._arg
            if callback is None:
                self._cancelled -= 1
                continue
            timer._callback = timer._arg = None  # fired: a later cancel() changes nothing
            try:
                callback(arg)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:  # as the loop reports a failing callback
                self._loop.call_exception_handler(
                    {"message": f"Exception in timer callback {callback!r}", "exception": exc}
                )
        heap = self._heap
        while heap and heap[0]._callback is None:  # cancelled at the front: no timer for it
            heapq.heappop(heap)
            self._cancelled -= 1
        if heap and (self._handle is None or heap[0].when < self._armed_at):
            self._arm(heap[0].when)


_heaps: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TimerHeap] = (
    weakref.WeakKeyDictionary()
)


#: The loop last asked for (a weak reference) and its heap: a server asks for one loop's, on
#: each of a connection's timers, and the weak-keyed lookup costs about 2,000 instructions.
_last: tuple[weakref.ref[asyncio.AbstractEventLoop], TimerHeap] | None = None


def timers_for(loop: asyncio.AbstractEventLoop) -> TimerHeap:
    """The :class:`TimerHeap` of ``loop`` (made on first use)."""
    global _last
    last = _last
    if last is not None and last[0]() is loop:
        return last[1]
    heap = _heaps.get(loop)
    if heap is None:
        heap = _heaps[loop] = TimerHeap(loop)
    _last = (weakref.ref(loop), heap)
    return heap
