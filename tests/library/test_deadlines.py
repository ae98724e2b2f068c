"""netrun_ws.runtime.deadlines: one timer for many same-length limits, as asyncio.timeout().

Deadlines keeps its limits on the event loop's own timer, so the limits are tested on virtual
time (tests.support.virtual_time): every wait below takes exactly as long as it says, in order,
however loaded the machine is.
"""

from __future__ import annotations

import asyncio

import pytest

from netrun_ws.runtime.deadlines import Deadlines
from tests.support.virtual_time import run_in_virtual_time


async def _value_after(seconds: float, value: str) -> str:
    await asyncio.sleep(seconds)
    return value


def test_an_await_within_the_limit_returns_its_value() -> None:
    async def scenario() -> None:
        deadlines = Deadlines(1.0)
        assert await deadlines.run(_value_after(0.999, "done")) == "done"
        assert await deadlines.run(_value_after(0, "at once")) == "at once"
        assert len(deadlines) == 0

    run_in_virtual_time(scenario)


def test_past_the_limit_it_raises_timeout_and_the_task_goes_on() -> None:
    async def scenario() -> None:
        deadlines = Deadlines(0.05)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await deadlines.run(_value_after(5, "late"))
        assert loop.time() - started == pytest.approx(0.05)  # at the limit, not at the end
        # The cancellation was consumed: this task can still await.
        assert await _value_after(0.01, "after") == "after"
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        assert len(deadlines) == 0

    run_in_virtual_time(scenario)


def test_limits_expire_in_order_and_spare_the_quick_ones() -> None:
    async def scenario() -> list[str]:
        deadlines = Deadlines(0.2)

        async def one(delay: float, duration: float) -> str:
            await asyncio.sleep(delay)
            try:
                return await deadlines.run(_value_after(duration, "ok"))
            except TimeoutError:
                return "timeout"

        outcomes = await asyncio.gather(
            one(0.0, 0.19), one(0.0, 0.21), one(0.05, 0.15), one(0.1, 1.0), one(0.15, 0.02)
        )
        assert len(deadlines) == 0
        return list(outcomes)

    assert run_in_virtual_time(scenario) == ["ok", "timeout", "ok", "timeout", "ok"]


def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    async def scenario() -> None:
        deadlines = Deadlines(5.0)
        task = asyncio.ensure_future(deadlines.run(_value_after(5, "never")))
        await asyncio.sleep(4.9)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(deadlines) == 0

    run_in_virtual_time(scenario)


async def test_an_error_inside_propagates_and_frees_the_limit() -> None:
    deadlines = Deadlines(1.0)

    async def failing() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await deadlines.run(failing())
    assert len(deadlines) == 0


def test_one_instance_serves_successive_event_loops() -> None:
    deadlines = Deadlines(0.05)

    async def slow() -> str:
        try:
            return await deadlines.run(_value_after(1, "late"))
        except TimeoutError:
            return "timeout"

    assert run_in_virtual_time(slow) == "timeout"
    assert run_in_virtual_time(slow) == "timeout"
