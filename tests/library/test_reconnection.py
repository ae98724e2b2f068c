"""ReconnectionManager: the backoff schedule (injected sleep/random), outcomes, stop and stats."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import FrozenInstanceError
from typing import Any

import pytest

from netrun_ws.reconnection import ReconnectionConfig, ReconnectionManager
from tests.support.manual_time import ManualTime


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def connect_after(failures: int, *, raise_errors: bool = True) -> Callable[[], bool]:
    """A connect callback that fails ``failures`` times, then succeeds."""
    calls = {"n": 0}

    def connect() -> bool:
        calls["n"] += 1
        if calls["n"] <= failures:
            if raise_errors:
                raise OSError(f"refused #{calls['n']}")
            return False
        return True

    return connect


def manager(config: ReconnectionConfig | None = None, **kwargs: Any) -> ReconnectionManager:
    return ReconnectionManager(config or ReconnectionConfig(jitter=False), **kwargs)


# -- config ---------------------------------------------------------------------------------------


def test_config_defaults() -> None:
    config = ReconnectionConfig()
    assert config.initial_delay == 1.0 and config.max_delay == 60.0
    assert config.max_attempts == 10 and config.backoff_multiplier == 2.0
    assert config.jitter is True
    assert ReconnectionManager().config == config


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"initial_delay": -1}, "initial_delay"),
        ({"initial_delay": "1"}, "initial_delay"),
        ({"max_delay": -1, "initial_delay": 0}, "max_delay"),
        ({"max_delay": float("inf")}, "max_delay"),
        ({"initial_delay": float("nan")}, "initial_delay"),
        ({"initial_delay": 10, "max_delay": 5}, "max_delay"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier"),
        ({"backoff_multiplier": float("nan")}, "backoff_multiplier"),
        ({"max_attempts": -1}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"jitter": "yes"}, "jitter"),
    ],
)
def test_config_rejects_bad_values_naming_the_argument(
    kwargs: dict[str, Any], argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        ReconnectionConfig(**kwargs)


def test_config_edge_values_are_allowed_and_config_is_frozen() -> None:
    config = ReconnectionConfig(initial_delay=0, max_delay=0, max_attempts=0, backoff_multiplier=1)
    assert config.base_delay(5) == 0
    with pytest.raises(FrozenInstanceError):
        config.max_attempts = 3  # type: ignore[misc]


def test_client_policy_is_json_and_mirrors_the_config() -> None:
    policy = ReconnectionConfig(initial_delay=0.5, max_delay=30, max_attempts=0).to_client_policy()
    assert (
        json.loads(json.dumps(policy))
        == policy
        == {
            "strategy": "exponential",
            "initial_delay": 0.5,
            "max_delay": 30,
            "max_attempts": 0,
            "backoff_multiplier": 2.0,
            "jitter": "equal",
        }
    )
    assert ReconnectionConfig(jitter=False).to_client_policy()["jitter"] == "none"


# -- delays ---------------------------------------------------------------------------------------


def test_delay_schedule_without_jitter() -> None:
    reconnection = manager()
    delays = [reconnection.calculate_delay(attempt) for attempt in range(1, 10)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert reconnection.calculate_delay(0) == 1  # lenient: attempt 0 is the first delay


def test_delay_never_overflows() -> None:
    assert manager().calculate_delay(100_000) == 60


@pytest.mark.parametrize("attempt", [-1, 1.5, "2"])
def test_bad_attempt_numbers_raise(attempt: Any) -> None:
    with pytest.raises(ValueError, match="attempt"):
        manager().calculate_delay(attempt)


def test_jitter_stays_between_half_and_full_delay() -> None:
    low = ReconnectionManager(ReconnectionConfig(), random=lambda: 0.0)
    high = ReconnectionManager(ReconnectionConfig(), random=lambda: 0.999999)
    assert [low.calculate_delay(n) for n in (1, 3, 9)] == [0.5, 2.0, 30.0]
    assert [round(high.calculate_delay(n), 3) for n in (1, 3, 9)] == [1.0, 4.0, 60.0]


def test_real_random_jitter_is_bounded() -> None:
    reconnection = ReconnectionManager(ReconnectionConfig())
    for attempt in range(1, 12):
        base = reconnection.config.base_delay(attempt)
        assert base / 2 <= reconnection.calculate_delay(attempt) <= base


# -- reconnect ------------------------------------------------------------------------------------


async def test_succeeds_after_failures_with_backoff() -> None:
    sleep = FakeSleep()
    failures: list[tuple[int, BaseException]] = []
    successes: list[bool] = []
    reconnection = manager(sleep=sleep)
    ok = await reconnection.reconnect(
        connect_after(2),
        on_success=lambda: successes.append(True),
        on_failure=lambda attempt, error: failures.append((attempt, error)),
    )
    assert ok is True
    assert sleep.delays == [1, 2, 4]
    assert [attempt for attempt, _ in failures] == [1, 2]
    assert all(isinstance(error, OSError) for _, error in failures)
    assert str(failures[1][1]) == "refused #2"
    assert successes == [True]
    stats = reconnection.get_stats()
    assert stats["attempts"] == 3 and stats["total_attempts"] == 3
    assert stats["successful_reconnections"] == 1 and stats["failed_attempts"] == 2
    assert stats["last_error"] is None and stats["is_reconnecting"] is False


async def test_falsy_result_is_a_failure_with_a_connection_error() -> None:
    errors: list[BaseException] = []
    ok = await manager(sleep=FakeSleep()).reconnect(
        connect_after(1, raise_errors=False), on_failure=lambda _, error: errors.append(error)
    )
    assert ok is True
    assert len(errors) == 1 and isinstance(errors[0], ConnectionError)
    assert "returned False" in str(errors[0])


async def test_async_callbacks_are_awaited() -> None:
    events: list[str] = []
    outcomes = iter([None, "ws"])

    async def connect() -> object:
        await asyncio.sleep(0)
        return next(outcomes)

    async def on_failure(attempt: int, error: BaseException) -> None:
        events.append(f"fail {attempt}")

    async def on_success() -> None:
        events.append("ok")

    ok = await manager(sleep=FakeSleep()).reconnect(connect, on_success, on_failure)
    assert ok is True and events == ["fail 1", "ok"]


async def test_gives_up_after_max_attempts() -> None:
    sleep = FakeSleep()
    exhausted: list[bool] = []
    failed: list[int] = []
    reconnection = manager(ReconnectionConfig(max_attempts=3, jitter=False), sleep=sleep)
    ok = await reconnection.reconnect(
        connect_after(99),
        on_failure=lambda attempt, _: failed.append(attempt),
        on_max_attempts=lambda: exhausted.append(True),
    )
    assert ok is False
    assert failed == [1, 2, 3] and exhausted == [True]
    assert sleep.delays == [1, 2, 4]
    stats = reconnection.get_stats()
    assert stats["exhausted"] == 1 and stats["last_error"] == "OSError: refused #3"
    assert stats["last_delay"] == 4


async def test_zero_max_attempts_means_unlimited() -> None:
    sleep = FakeSleep()
    reconnection = manager(ReconnectionConfig(max_attempts=0, jitter=False), sleep=sleep)
    assert await reconnection.reconnect(connect_after(30)) is True
    assert reconnection.attempts == 31
    assert sleep.delays[-1] == 60 and max(sleep.delays) == 60


async def test_stop_interrupts_a_long_wait() -> None:
    exhausted: list[bool] = []
    time = ManualTime()
    reconnection = manager(
        ReconnectionConfig(initial_delay=3600, max_delay=3600, jitter=False), sleep=time.sleep
    )
    task = asyncio.create_task(
        reconnection.reconnect(connect_after(0), on_max_attempts=lambda: exhausted.append(True))
    )
    await time.until(lambda: time.sleeping() == 1, "the first wait starts")
    assert reconnection.is_reconnecting is True and reconnection.last_delay == 3600
    reconnection.stop()  # the hour never passes: only stop() can end the wait
    assert await asyncio.wait_for(task, timeout=5) is False
    assert time.sleeping() == 0  # the wait was abandoned, not left behind
    assert exhausted == [] and reconnection.total_attempts == 0
    assert reconnection.get_stats()["stopped"] is True


async def test_stop_from_on_failure_ends_the_run() -> None:
    reconnection = manager(sleep=FakeSleep())
    ok = await reconnection.reconnect(
        connect_after(99), on_failure=lambda attempt, _: reconnection.stop()
    )
    assert ok is False and reconnection.attempts == 1


async def test_a_new_reconnect_after_stop_runs_again() -> None:
    reconnection = manager(sleep=FakeSleep())
    reconnection.stop()
    assert await reconnection.reconnect(connect_after(0)) is True


async def test_concurrent_reconnect_is_refused() -> None:
    time = ManualTime()
    reconnection = manager(sleep=time.sleep)
    task = asyncio.create_task(reconnection.reconnect(connect_after(0)))
    await time.until(lambda: time.sleeping() == 1, "the first wait starts")
    with pytest.raises(RuntimeError, match="already running"):
        await reconnection.reconnect(connect_after(0))
    reconnection.stop()
    assert await asyncio.wait_for(task, timeout=5) is False


async def test_failing_user_callbacks_are_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError("callback bug")

    with caplog.at_level(logging.ERROR, logger="netrun_ws.reconnection"):
        ok = await manager(sleep=FakeSleep()).reconnect(connect_after(1), boom, boom)
        exhausted = await manager(
            ReconnectionConfig(max_attempts=1, jitter=False), sleep=FakeSleep()
        ).reconnect(connect_after(5), on_max_attempts=boom)
    assert ok is True and exhausted is False
    assert caplog.text.count("callback failed") == 3


async def test_reset_forgets_the_run() -> None:
    reconnection = manager(ReconnectionConfig(max_attempts=2, jitter=False), sleep=FakeSleep())
    await reconnection.reconnect(connect_after(99))
    reconnection.stop()
    reconnection.reset()
    stats = reconnection.get_stats()
    assert stats["attempts"] == 0 and stats["last_delay"] is None
    assert stats["last_error"] is None and stats["stopped"] is False
    assert stats["total_attempts"] == 2  # lifetime totals survive reset()


def test_stats_include_the_policy() -> None:
    stats = manager().get_stats()
    assert stats["policy"] == ReconnectionConfig(jitter=False).to_client_policy()
    assert stats["max_attempts"] == 10 and stats["attempts"] == 0


# -- netrun-websocket README callbacks ------------------------------------------------------------


async def test_one_argument_on_failure_gets_the_attempt_only() -> None:
    # The README's own callback: with two arguments passed it would raise TypeError every time.
    printed: list[str] = []
    ok = await manager(sleep=FakeSleep()).reconnect(
        connect_after(2), on_failure=lambda attempt: printed.append(f"Attempt {attempt} failed")
    )
    assert ok is True
    assert printed == ["Attempt 1 failed", "Attempt 2 failed"]


async def test_on_failure_gets_the_error_when_it_asks_for_it() -> None:
    errors: list[tuple[Any, ...]] = []

    async def two(attempt: int, error: BaseException) -> None:
        errors.append((attempt, str(error)))

    def star(*args: Any) -> None:
        errors.append(("star", *map(str, args)))

    def keyword_error(attempt: int, error: BaseException | None = None) -> None:
        errors.append(("default", attempt, type(error).__name__))

    for callback in (two, star, keyword_error):
        await manager(sleep=FakeSleep()).reconnect(connect_after(1), on_failure=callback)
    assert errors == [(1, "refused #1"), ("star", "1", "refused #1"), ("default", 1, "OSError")]


async def test_readme_success_and_max_attempts_callbacks_take_nothing() -> None:
    calls: list[str] = []
    reconnection = manager(ReconnectionConfig(jitter=False, max_attempts=2), sleep=FakeSleep())
    assert not await reconnection.reconnect(
        connect_after(5),
        on_success=lambda: calls.append("success"),
        on_failure=lambda attempt: calls.append(f"failed {attempt}"),
        on_max_attempts=lambda: calls.append("gave up"),
    )
    assert calls == ["failed 1", "failed 2", "gave up"]
