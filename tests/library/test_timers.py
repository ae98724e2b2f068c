"""netrun_ws.timers: many timers on one loop timer, firing as ``loop.call_later``'s would.

On virtual time (tests.support.virtual_time): each timer's firing time is exact, whatever the
machine's load.
"""

from __future__ import annotations

import asyncio
from typing import Any

from netrun_ws.timers import TimerHeap, timers_for
from tests.support.virtual_time import run_in_virtual_time


def test_timers_fire_at_their_time_in_order_of_time_then_of_scheduling() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        timers = timers_for(loop)
        fired: list[tuple[str, float]] = []

        def record(name: str) -> None:
            fired.append((name, loop.time()))

        for name, delay in (("c", 3.0), ("a", 1.0), ("b", 2.0), ("a2", 1.0), ("now", -5.0)):
            timers.call_later(delay, record, name)
        assert len(timers) == 5
        await asyncio.sleep(10)
        assert fired == [("now", 0.0), ("a", 1.0), ("a2", 1.0), ("b", 2.0), ("c", 3.0)]
        assert len(timers) == 0

    run_in_virtual_time(scenario)


def test_a_cancelled_timer_never_fires_and_a_fired_one_ignores_cancel() -> None:
    async def scenario() -> None:
        timers = timers_for(asyncio.get_running_loop())
        fired: list[str] = []
        first = timers.call_later(1.0, fired.append, "first")
        second = timers.call_later(2.0, fired.append, "second")
        first.cancel()
        first.cancel()  # twice: counted once
        assert first.cancelled() and len(timers) == 1
        await asyncio.sleep(3)
        assert fired == ["second"]
        second.cancel()  # already fired
        assert len(timers) == 0

    run_in_virtual_time(scenario)


def test_an_earlier_timer_scheduled_later_rearms_the_loop_timer() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        timers = timers_for(loop)
        fired: list[float] = []
        timers.call_later(60.0, lambda _: fired.append(loop.time()), None)
        timers.call_later(0.5, lambda _: fired.append(loop.time()), None)
        await asyncio.sleep(61)
        assert fired == [0.5, 60.0]

    run_in_virtual_time(scenario)


def test_a_callback_that_schedules_keeps_every_timer_on_time() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        timers = timers_for(loop)
        fired: list[tuple[str, float]] = []

        def again(name: str) -> None:
            fired.append((name, loop.time()))
            if len(fired) < 4:
                timers.call_later(5.0, again, name)  # later than the pending "other"

        timers.call_later(1.0, again, "ping")
        timers.call_later(2.0, lambda name: fired.append((name, loop.time())), "other")
        await asyncio.sleep(20)
        assert fired == [("ping", 1.0), ("other", 2.0), ("ping", 6.0), ("ping", 11.0)]

    run_in_virtual_time(scenario)


def test_cancelled_timers_are_dropped_once_they_are_a_quarter() -> None:
    async def scenario() -> None:
        timers = TimerHeap(asyncio.get_running_loop())
        fired: list[int] = []
        handles = [timers.call_later(3600.0, fired.append, n) for n in range(1000)]
        for handle in handles[:240]:
            handle.cancel()
        timers.call_later(1.0, fired.append, -1)  # under a quarter: nothing rebuilt
        assert len(timers._heap) == 1001 and len(timers) == 761
        for handle in handles[240:300]:
            handle.cancel()
        timers.call_later(1.0, fired.append, -2)  # past a quarter: rebuilt without them
        assert len(timers._heap) == len(timers) == 702
        await asyncio.sleep(3601)
        assert fired == [-1, -2, *range(300, 1000)]

    run_in_virtual_time(scenario)


def test_a_failing_callback_is_reported_and_the_others_still_fire() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        timers = timers_for(loop)
        fired: list[str] = []

        def boom(_: object) -> None:
            raise RuntimeError("boom")

        timers.call_later(1.0, boom, None)
        timers.call_later(1.0, fired.append, "after")
        await asyncio.sleep(2)
        assert fired == ["after"]
        assert [type(context["exception"]) for context in reported] == [RuntimeError]

    run_in_virtual_time(scenario)


def test_each_loop_has_its_own_heap() -> None:
    async def scenario() -> TimerHeap:
        return timers_for(asyncio.get_running_loop())

    assert run_in_virtual_time(scenario) is not run_in_virtual_time(scenario)
