"""netrun_ws.runtime.deadlines: one timer for many same-length limits, as asyncio.timeout()."""

from __future__ import annotations

import asyncio
import time

import pytest

from netrun_ws.runtime.deadlines import Deadlines


async def _value_after(seconds: float, value: str) -> str:
    await asyncio.sleep(seconds)
    return value


async def test_an_await_within_the_limit_returns_its_value() -> None:
    deadlines = Deadlines(1.0)
    assert await deadlines.run(_value_after(0.01, "done")) == "done"
    assert await deadlines.run(_value_after(0, "at once")) == "at once"
    assert len(deadlines) == 0


async def test_past_the_limit_it_raises_timeout_and_the_task_goes_on() -> None:
    deadlines = Deadlines(0.05)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await deadlines.run(_value_after(5, "late"))
    assert 0.04 <= time.monotonic() - started < 1.0
    # The cancellation was consumed: this task can still await.
    assert await _value_after(0.01, "after") == "after"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    assert len(deadlines) == 0


async def test_limits_expire_in_order_and_spare_the_quick_ones() -> None:
    deadlines = Deadlines(0.2)

    async def one(delay: float, duration: float) -> str:
        await asyncio.sleep(delay)
        try:
            return await deadlines.run(_value_after(duration, "ok"))
        except TimeoutError:
            return "timeout"

    outcomes = await asyncio.gather(
        one(0.0, 0.05), one(0.0, 1.0), one(0.05, 0.05), one(0.1, 1.0), one(0.15, 0.02)
    )
    assert outcomes == ["ok", "timeout", "ok", "timeout", "ok"]
    assert len(deadlines) == 0


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines(5.0)
    task = asyncio.ensure_future(deadlines.run(_value_after(5, "never")))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(deadlines) == 0


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

    assert asyncio.run(slow()) == "timeout"
    assert asyncio.run(slow()) == "timeout"
