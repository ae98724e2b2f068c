"""HeartbeatMonitor: stale/miss rules on a fake clock, callback isolation, the real loop."""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from dataclasses import FrozenInstanceError
from typing import Any

import pytest

from netrun_ws.heartbeat import HeartbeatConfig, HeartbeatMonitor
from tests.support.manual_time import ManualTime


class Recorder:
    """Sync callbacks that record what they were called with."""

    def __init__(self) -> None:
        self.pings: list[str] = []
        self.cleanups: list[str] = []
        self.misses: list[tuple[str, int]] = []

    def ping(self, connection_id: str) -> None:
        self.pings.append(connection_id)

    def cleanup(self, connection_id: str) -> None:
        self.cleanups.append(connection_id)

    def miss(self, connection_id: str, missed: int) -> None:
        self.misses.append((connection_id, missed))


@pytest.fixture
def clock() -> ManualTime:
    return ManualTime(start=1000.0)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


async def _armed(
    clock: ManualTime, recorder: Recorder, config: HeartbeatConfig | None = None
) -> HeartbeatMonitor:
    """A monitor with callbacks set but the loop stopped, so passes are run by hand."""
    monitor = HeartbeatMonitor(config, clock=clock)
    await monitor.start(recorder.ping, recorder.cleanup, recorder.miss)
    await monitor.stop()
    return monitor


# -- config ---------------------------------------------------------------------------------------


def test_config_defaults() -> None:
    config = HeartbeatConfig()
    assert (config.interval, config.timeout, config.max_missed) == (30, 90, 3)
    assert HeartbeatMonitor().config == config


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"interval": 0}, "interval"),
        ({"interval": -1}, "interval"),
        ({"interval": "30"}, "interval"),
        ({"interval": float("nan")}, "interval"),
        ({"timeout": float("inf")}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -5}, "timeout"),
        ({"max_missed": 0}, "max_missed"),
        ({"max_missed": -1}, "max_missed"),
        ({"max_missed": 1.5}, "max_missed"),
        ({"max_missed": True}, "max_missed"),
        ({"interval": 30, "timeout": 10}, "timeout"),
    ],
)
def test_config_rejects_bad_values_naming_the_argument(
    kwargs: dict[str, Any], argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        HeartbeatConfig(**kwargs)


def test_config_accepts_timeout_equal_to_interval_and_is_frozen() -> None:
    config = HeartbeatConfig(interval=5, timeout=5, max_missed=1)
    with pytest.raises(FrozenInstanceError):
        config.interval = 1  # type: ignore[misc]


# -- registry and is_stale -----------------------------------------------------------------------


def test_register_update_unregister(clock: ManualTime) -> None:
    monitor = HeartbeatMonitor(clock=clock)
    monitor.register_connection("c1")
    assert monitor.is_stale("c1") is False
    clock.advance(90)
    assert monitor.is_stale("c1") is False  # exactly at the timeout is still fine
    clock.advance(0.001)
    assert monitor.is_stale("c1") is True
    assert monitor.update_heartbeat("c1") is True
    assert monitor.is_stale("c1") is False
    monitor.unregister_connection("c1")
    assert monitor.get_stats()["total_connections"] == 0


def test_unknown_connection_is_stale_and_a_late_pong_does_not_revive_it(clock: ManualTime) -> None:
    monitor = HeartbeatMonitor(clock=clock)
    assert monitor.is_stale("ghost") is True
    assert monitor.update_heartbeat("ghost") is False
    assert monitor.get_stats()["total_connections"] == 0
    monitor.unregister_connection("ghost")  # ignored, no error


def test_re_registering_resets_the_connection(clock: ManualTime) -> None:
    monitor = HeartbeatMonitor(clock=clock)
    monitor.register_connection("c1")
    clock.advance(100)
    monitor.register_connection("c1")
    assert monitor.is_stale("c1") is False


# -- one pass at a time --------------------------------------------------------------------------


async def test_silent_connection_misses_then_is_cleaned_up(
    clock: ManualTime, recorder: Recorder
) -> None:
    monitor = await _armed(clock, recorder)
    monitor.register_connection("c1")
    for _ in range(3):
        clock.advance(30)
        await monitor.check_once()
    assert recorder.pings == ["c1", "c1", "c1"]
    assert recorder.misses == [("c1", 1), ("c1", 2)]  # the first ping was not yet due an answer
    assert recorder.cleanups == []
    clock.advance(30)
    await monitor.check_once()
    assert recorder.cleanups == ["c1"]
    assert recorder.pings == ["c1", "c1", "c1"]  # no ping to a stale connection
    assert monitor.is_stale("c1") is True
    assert monitor.get_stats()["total_connections"] == 0


async def test_answering_connection_is_never_missed(clock: ManualTime, recorder: Recorder) -> None:
    monitor = await _armed(clock, recorder)
    monitor.register_connection("c1")
    for _ in range(10):
        clock.advance(30)
        await monitor.check_once()
        clock.advance(0.2)
        monitor.update_heartbeat("c1")  # the pong
    assert len(recorder.pings) == 10
    assert recorder.misses == [] and recorder.cleanups == []


async def test_a_pong_after_a_miss_resets_the_count(clock: ManualTime, recorder: Recorder) -> None:
    monitor = await _armed(clock, recorder)
    monitor.register_connection("c1")
    clock.advance(30)
    await monitor.check_once()
    clock.advance(30)
    await monitor.check_once()
    assert recorder.misses == [("c1", 1)]
    monitor.update_heartbeat("c1")
    clock.advance(30)
    await monitor.check_once()
    clock.advance(30)
    await monitor.check_once()
    assert recorder.misses == [("c1", 1), ("c1", 1)]
    assert recorder.cleanups == []


async def test_max_missed_makes_stale_before_the_timeout(
    clock: ManualTime, recorder: Recorder
) -> None:
    monitor = await _armed(
        clock, recorder, HeartbeatConfig(interval=10, timeout=1000, max_missed=2)
    )
    monitor.register_connection("c1")
    for _ in range(3):
        clock.advance(10)
        await monitor.check_once()
    assert recorder.misses == [("c1", 1)]
    assert recorder.cleanups == ["c1"]


async def test_timeout_makes_stale_before_max_missed(clock: ManualTime, recorder: Recorder) -> None:
    monitor = await _armed(clock, recorder, HeartbeatConfig(interval=10, timeout=15, max_missed=50))
    monitor.register_connection("c1")
    await monitor.check_once()
    clock.advance(16)
    await monitor.check_once()
    assert recorder.cleanups == ["c1"]


async def test_connection_registered_between_passes_is_not_missed(
    clock: ManualTime, recorder: Recorder
) -> None:
    monitor = await _armed(clock, recorder)
    await monitor.check_once()
    clock.advance(20)
    monitor.register_connection("late")
    clock.advance(10)
    await monitor.check_once()
    assert recorder.misses == [] and recorder.pings == ["late"]


async def test_async_callbacks_are_awaited(clock: ManualTime) -> None:
    seen: list[tuple[str, Any]] = []

    async def ping(connection_id: str) -> None:
        await asyncio.sleep(0)
        seen.append(("ping", connection_id))

    async def cleanup(connection_id: str) -> None:
        seen.append(("cleanup", connection_id))

    async def miss(connection_id: str, missed: int) -> None:
        seen.append(("miss", (connection_id, missed)))

    monitor = HeartbeatMonitor(HeartbeatConfig(interval=10, timeout=25, max_missed=5), clock=clock)
    await monitor.start(ping, cleanup, miss)
    await monitor.stop()
    monitor.register_connection("c1")
    for _ in range(3):
        clock.advance(10)
        await monitor.check_once()
    assert seen == [
        ("ping", "c1"),
        ("miss", ("c1", 1)),
        ("ping", "c1"),
        ("cleanup", "c1"),
    ]


async def test_miss_callback_is_optional(clock: ManualTime, recorder: Recorder) -> None:
    monitor = HeartbeatMonitor(clock=clock)
    await monitor.start(recorder.ping, recorder.cleanup)
    await monitor.stop()
    monitor.register_connection("c1")
    for _ in range(4):
        clock.advance(30)
        await monitor.check_once()
    assert recorder.cleanups == ["c1"] and recorder.misses == []
    assert monitor.get_stats()["misses"] == 2


async def test_check_once_without_callbacks_still_applies_the_rules(clock: ManualTime) -> None:
    monitor = HeartbeatMonitor(clock=clock)
    monitor.register_connection("c1")
    clock.advance(91)
    await monitor.check_once()
    assert monitor.get_stats()["total_connections"] == 0


# -- failure isolation ---------------------------------------------------------------------------


async def test_a_failing_callback_does_not_skip_other_connections(
    clock: ManualTime, caplog: pytest.LogCaptureFixture
) -> None:
    pinged: list[str] = []

    def ping(connection_id: str) -> None:
        if connection_id == "bad":
            raise RuntimeError("socket exploded")
        pinged.append(connection_id)

    monitor = HeartbeatMonitor(clock=clock)
    await monitor.start(ping, lambda _: None)
    await monitor.stop()
    for connection_id in ("a", "bad", "b"):
        monitor.register_connection(connection_id)
    with caplog.at_level(logging.ERROR, logger="netrun_ws.heartbeat"):
        await monitor.check_once()
    assert pinged == ["a", "b"]
    assert monitor.get_stats()["callback_errors"] == 1
    assert "ping callback failed for bad" in caplog.text


async def test_a_failing_cleanup_still_unregisters(clock: ManualTime) -> None:
    def cleanup(connection_id: str) -> None:
        raise RuntimeError("cleanup broke")

    monitor = HeartbeatMonitor(clock=clock)
    await monitor.start(lambda _: None, cleanup)
    await monitor.stop()
    monitor.register_connection("c1")
    monitor.register_connection("c2")
    clock.advance(91)
    await monitor.check_once()
    stats = monitor.get_stats()
    assert stats["total_connections"] == 0
    assert stats["cleanups"] == 2 and stats["callback_errors"] == 2


async def test_a_hung_async_callback_is_cut_off_after_one_interval() -> None:
    pinged: list[str] = []

    async def ping(connection_id: str) -> None:
        if connection_id == "hung":
            await asyncio.sleep(3600)
        pinged.append(connection_id)

    monitor = HeartbeatMonitor(HeartbeatConfig(interval=0.05, timeout=10, max_missed=3))
    await monitor.start(ping, lambda _: None)
    await monitor.stop()
    monitor.register_connection("hung")
    monitor.register_connection("ok")
    await asyncio.wait_for(monitor.check_once(), timeout=5)
    assert pinged == ["ok"]
    assert monitor.get_stats()["callback_errors"] == 1


async def test_callbacks_may_unregister_connections_during_a_pass(clock: ManualTime) -> None:
    monitor = HeartbeatMonitor(clock=clock)
    pinged: list[str] = []

    def ping(connection_id: str) -> None:
        pinged.append(connection_id)
        monitor.unregister_connection("c2")  # e.g. the app closed it meanwhile
        monitor.register_connection("c3")

    await monitor.start(ping, lambda _: None)
    await monitor.stop()
    monitor.register_connection("c1")
    monitor.register_connection("c2")
    await monitor.check_once()
    assert pinged == ["c1"]
    assert monitor.is_stale("c3") is False


async def test_a_long_pass_yields_to_the_event_loop(clock: ManualTime) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(1_000_000):
            ticks += 1
            await asyncio.sleep(0)

    seen: list[int] = []
    monitor = HeartbeatMonitor(clock=clock)
    await monitor.start(lambda _: seen.append(ticks), lambda _: None)
    await monitor.stop()
    for index in range(2000):
        monitor.register_connection(f"c{index}")
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        await monitor.check_once()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(seen) == 2000
    assert seen[-1] > seen[0]  # other tasks ran during the pass


# -- the background loop -------------------------------------------------------------------------


async def test_the_loop_runs_a_pass_every_interval_until_stopped(clock: ManualTime) -> None:
    pinged_at: list[float] = []
    config = HeartbeatConfig(interval=10, timeout=1000, max_missed=1000)
    monitor = HeartbeatMonitor(config, clock=clock, sleep=clock.sleep)
    monitor.register_connection("c1")
    await monitor.start(lambda _: pinged_at.append(clock.now), lambda _: None)
    assert monitor.running is True
    for _ in range(3):
        await clock.step()  # the loop's next wake-up: one pass, then it sleeps again
    assert pinged_at == [1010.0, 1020.0, 1030.0]  # the first pass one interval after start()
    await monitor.stop()
    assert monitor.running is False
    assert clock.sleeping() == 0  # the loop no longer waits for anything: nothing after stop()
    clock.advance(100)
    await asyncio.sleep(0)
    assert len(pinged_at) == 3 and monitor.get_stats()["checks"] == 3


async def test_the_loop_cleans_up_a_silent_connection() -> None:
    cleaned = asyncio.Event()
    monitor = HeartbeatMonitor(HeartbeatConfig(interval=0.01, timeout=0.03, max_missed=2))
    monitor.register_connection("quiet")
    await monitor.start(lambda _: None, lambda _: cleaned.set())
    try:
        await asyncio.wait_for(cleaned.wait(), timeout=5)
    finally:
        await monitor.stop()
    assert monitor.is_stale("quiet") is True


async def test_start_twice_is_refused_and_stop_is_idempotent() -> None:
    monitor = HeartbeatMonitor(HeartbeatConfig(interval=10, timeout=10))
    await monitor.stop()  # not running: fine
    await monitor.start(lambda _: None, lambda _: None)
    with pytest.raises(RuntimeError, match="already running"):
        await monitor.start(lambda _: None, lambda _: None)
    await monitor.stop()
    await monitor.stop()
    await monitor.start(lambda _: None, lambda _: None)  # restart after stop works
    assert monitor.running is True
    await monitor.stop()


# -- stats and footprint -------------------------------------------------------------------------


async def test_get_stats(clock: ManualTime, recorder: Recorder) -> None:
    monitor = await _armed(clock, recorder, HeartbeatConfig(interval=10, timeout=30, max_missed=3))
    monitor.register_connection("fresh")
    monitor.register_connection("quiet")
    clock.advance(10)
    await monitor.check_once()
    clock.advance(10)
    monitor.update_heartbeat("fresh")
    await monitor.check_once()
    clock.advance(11)
    stats = monitor.get_stats()
    assert stats == {
        "total_connections": 2,
        "stale_connections": 1,
        "healthy_connections": 1,
        "running": False,
        "interval": 10,
        "timeout": 30,
        "max_missed": 3,
        "checks": 2,
        "pings_sent": 4,
        "misses": 1,
        "cleanups": 0,
        "callback_errors": 0,
    }


def test_idle_connection_state_is_small() -> None:
    monitor = HeartbeatMonitor()
    ids = [f"conn-{index}" for index in range(20_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for connection_id in ids:
            monitor.register_connection(connection_id)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    per_connection = (after - before) / len(ids)
    # Measured ~93 bytes (dict entry + two-slot object + float); a dict per connection ~230.
    assert per_connection < 150, per_connection


async def test_activity_read_at_each_pass_counts_as_a_heartbeat(
    clock: ManualTime, recorder: Recorder
) -> None:
    seen: dict[str, float] = {}
    monitor = HeartbeatMonitor(clock=clock, activity=seen.get)
    await monitor.start(recorder.ping, recorder.cleanup, recorder.miss)
    await monitor.stop()
    monitor.register_connection("active")
    monitor.register_connection("silent")
    for _ in range(5):
        clock.advance(30)
        seen["active"] = clock.now - 1  # heard from during the interval, never via update_heartbeat
        await monitor.check_once()
    assert recorder.cleanups == ["silent"]
    assert ("active", 1) not in recorder.misses
    assert monitor.is_stale("active") is False


async def test_activity_older_than_the_last_heartbeat_changes_nothing(
    clock: ManualTime, recorder: Recorder
) -> None:
    monitor = HeartbeatMonitor(clock=clock, activity=lambda connection_id: 0.0)
    await monitor.start(recorder.ping, recorder.cleanup, recorder.miss)
    await monitor.stop()
    monitor.register_connection("c1")
    for _ in range(4):
        clock.advance(30)
        await monitor.check_once()
    assert recorder.cleanups == ["c1"]


async def test_one_argument_miss_callback_gets_the_connection_id_only(clock: ManualTime) -> None:
    missed: list[object] = []
    monitor = HeartbeatMonitor(HeartbeatConfig(interval=10, timeout=90), clock=clock)
    await monitor.start(lambda cid: None, lambda cid: None, miss_callback=missed.append)
    await monitor.stop()
    monitor.register_connection("c1")
    for _ in range(3):
        clock.advance(10)
        await monitor.check_once()
    assert missed == ["c1", "c1"]
    assert monitor.get_stats()["callback_errors"] == 0
