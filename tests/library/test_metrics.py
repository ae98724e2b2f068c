"""MetricsCollector: per-connection, per-user and global counters, bounded latency statistics."""

from __future__ import annotations

import math
from typing import Any

import pytest

from netrun_ws.metrics import MetricsCollector


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(500.0)


@pytest.fixture
def wall() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def metrics(clock: FakeClock, wall: FakeClock) -> MetricsCollector:
    return MetricsCollector(clock=clock, wall_clock=wall)


def test_fresh_collector_stats(metrics: MetricsCollector) -> None:
    assert metrics.get_stats() == {
        "active_connections": 0,
        "peak_connections": 0,
        "total_connections": 0,
        "unique_users": 0,
        "messages_sent": 0,
        "messages_received": 0,
        "total_messages": 0,
        "bytes_sent": 0,
        "bytes_received": 0,
        "total_bytes": 0,
        "errors": 0,
        "latency_avg_ms": 0.0,
        "latency_min_ms": 0.0,
        "latency_max_ms": 0.0,
        "latency_p50_ms": 0.0,
        "latency_p95_ms": 0.0,
        "latency_p99_ms": 0.0,
        "latency_samples": 0,
        "uptime_seconds": 0.0,
    }


def test_connection_metrics(metrics: MetricsCollector, clock: FakeClock, wall: FakeClock) -> None:
    metrics.register_connection("c1", "alice")
    clock.now += 12
    wall.now += 12
    metrics.record_message_sent("c1", 100)
    metrics.record_message_sent("c1", 50)
    metrics.record_message_received("c1", 30)
    metrics.record_error("c1")
    assert metrics.get_connection_metrics("c1") == {
        "connection_id": "c1",
        "user_id": "alice",
        "connected_at": 1_700_000_000.0,
        "duration_seconds": 12.0,
        "last_activity": 1_700_000_012.0,
        "messages_sent": 2,
        "messages_received": 1,
        "bytes_sent": 150,
        "bytes_received": 30,
        "errors": 1,
    }


def test_unknown_connection_is_counted_globally_only(metrics: MetricsCollector) -> None:
    metrics.record_message_sent("ghost", 10)
    metrics.record_message_received("ghost", 20)
    metrics.record_error("ghost")
    assert metrics.get_connection_metrics("ghost") is None
    assert metrics.unregister_connection("ghost") is None
    stats = metrics.get_stats()
    assert (stats["messages_sent"], stats["bytes_sent"]) == (1, 10)
    assert (stats["messages_received"], stats["bytes_received"]) == (1, 20)
    assert stats["errors"] == 1
    assert stats["active_connections"] == 0


def test_user_metrics_sum_the_users_connections(metrics: MetricsCollector) -> None:
    metrics.register_connection("c1", "alice")
    metrics.register_connection("c2", "alice")
    metrics.register_connection("c3", "bob")
    metrics.record_message_sent("c1", 10)
    metrics.record_message_sent("c2", 5)
    metrics.record_message_received("c2", 7)
    metrics.record_error("c1")
    metrics.record_message_sent("c3", 1000)
    assert metrics.get_user_metrics("alice") == {
        "user_id": "alice",
        "active_connections": 2,
        "connection_ids": ["c1", "c2"],
        "messages_sent": 2,
        "messages_received": 1,
        "bytes_sent": 15,
        "bytes_received": 7,
        "errors": 1,
    }
    assert metrics.get_user_metrics("bob")["bytes_sent"] == 1000
    assert metrics.get_stats()["unique_users"] == 2


def test_user_without_connections_gets_zeros(metrics: MetricsCollector) -> None:
    result = metrics.get_user_metrics("nobody")
    assert result["active_connections"] == 0 and result["connection_ids"] == []
    assert result["messages_sent"] == 0 and result["errors"] == 0


def test_unregister_returns_final_metrics_and_keeps_totals(metrics: MetricsCollector) -> None:
    metrics.register_connection("c1", "alice")
    metrics.record_message_sent("c1", 40)
    final = metrics.unregister_connection("c1")
    assert final is not None and final["bytes_sent"] == 40
    assert metrics.get_connection_metrics("c1") is None
    assert metrics.get_user_metrics("alice")["active_connections"] == 0
    stats = metrics.get_stats()
    assert stats["active_connections"] == 0 and stats["unique_users"] == 0
    assert stats["total_connections"] == 1 and stats["bytes_sent"] == 40


def test_discard_forgets_like_unregister_and_keeps_totals(metrics: MetricsCollector) -> None:
    metrics.register_connection("c1", "alice")
    metrics.record_message_sent("c1", 40)
    metrics.discard_connection("c1")
    metrics.discard_connection("ghost")
    assert metrics.get_connection_metrics("c1") is None
    assert metrics.get_user_metrics("alice")["active_connections"] == 0
    stats = metrics.get_stats()
    assert stats["active_connections"] == 0 and stats["unique_users"] == 0
    assert stats["total_connections"] == 1 and stats["bytes_sent"] == 40


def test_peak_and_total_connections(metrics: MetricsCollector) -> None:
    for index in range(3):
        metrics.register_connection(f"c{index}", "u")
    metrics.unregister_connection("c0")
    metrics.register_connection("c9", "u")
    stats = metrics.get_stats()
    assert stats["active_connections"] == 3
    assert stats["peak_connections"] == 3
    assert stats["total_connections"] == 4
    assert metrics.active_connections == 3


def test_re_registering_an_id_moves_it_to_the_new_user(metrics: MetricsCollector) -> None:
    metrics.register_connection("c1", "alice")
    metrics.record_message_sent("c1", 5)
    metrics.register_connection("c1", "bob")
    assert metrics.get_user_metrics("alice")["active_connections"] == 0
    bob = metrics.get_user_metrics("bob")
    assert bob["connection_ids"] == ["c1"] and bob["bytes_sent"] == 0
    assert metrics.get_stats()["active_connections"] == 1


def test_latency_percentiles(metrics: MetricsCollector) -> None:
    for value in range(100, 0, -1):  # 100..1, unsorted on purpose
        metrics.record_latency(value)
    stats = metrics.get_stats()
    assert stats["latency_avg_ms"] == 50.5
    assert stats["latency_min_ms"] == 1 and stats["latency_max_ms"] == 100
    assert stats["latency_p50_ms"] == 50
    assert stats["latency_p95_ms"] == 95
    assert stats["latency_p99_ms"] == 99
    assert stats["latency_samples"] == 100


def test_single_latency_sample(metrics: MetricsCollector) -> None:
    metrics.record_latency(7.5)
    latency = metrics.get_latency_stats()
    assert latency == {
        "avg": 7.5,
        "min": 7.5,
        "max": 7.5,
        "p50": 7.5,
        "p95": 7.5,
        "p99": 7.5,
        "samples": 1,
        "total_samples": 1,
    }


def test_latency_memory_is_bounded_to_the_window() -> None:
    metrics = MetricsCollector(latency_window=10)
    for value in range(1, 101):
        metrics.record_latency(value)
    latency = metrics.get_latency_stats()
    assert latency["samples"] == 10 and latency["total_samples"] == 100
    assert latency["min"] == 91 and latency["max"] == 100


def test_default_latency_window_is_ten_thousand() -> None:
    metrics = MetricsCollector()
    for _ in range(10_050):
        metrics.record_latency(1.0)
    assert metrics.get_latency_stats()["samples"] == 10_000


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, -math.inf])
def test_record_latency_rejects_bad_values(metrics: MetricsCollector, bad: float) -> None:
    with pytest.raises(ValueError, match="latency_ms"):
        metrics.record_latency(bad)
    assert metrics.get_stats()["latency_samples"] == 0


def test_negative_sizes_are_rejected(metrics: MetricsCollector) -> None:
    metrics.register_connection("c1", "u")
    with pytest.raises(ValueError, match="size_bytes"):
        metrics.record_message_sent("c1", -1)
    with pytest.raises(ValueError, match="size_bytes"):
        metrics.record_message_received("c1", -1)
    assert metrics.get_stats()["total_messages"] == 0


@pytest.mark.parametrize("window", [0, -5, 1.5, True])
def test_latency_window_must_be_a_positive_integer(window: Any) -> None:
    with pytest.raises(ValueError, match="latency_window"):
        MetricsCollector(latency_window=window)


def test_uptime_follows_the_clock(metrics: MetricsCollector, clock: FakeClock) -> None:
    clock.now += 42.5
    assert metrics.get_stats()["uptime_seconds"] == 42.5


def test_totals_in_stats(metrics: MetricsCollector) -> None:
    metrics.register_connection("c1", "u")
    metrics.record_message_sent("c1", 3)
    metrics.record_message_received("c1", 4)
    metrics.record_message_received("other", 5)
    stats = metrics.get_stats()
    assert stats["total_messages"] == 3
    assert stats["total_bytes"] == 12


def test_update_connection_counters_takes_totals_and_grows_globals_by_the_difference() -> None:
    collector = MetricsCollector()
    collector.register_connection("c1", "alice")
    collector.record_message_received("c1", 10)
    counters = {"messages_sent": 3, "messages_received": 4, "bytes_sent": 30, "bytes_received": 40}
    collector.update_connection_counters("c1", **counters, last_activity=123.0)
    metrics = collector.get_connection_metrics("c1")
    assert metrics is not None
    assert {key: metrics[key] for key in counters} == counters
    assert metrics["last_activity"] >= 123.0
    assert (collector.messages_received, collector.bytes_received) == (4, 40)
    collector.update_connection_counters("c1", **{**counters, "messages_sent": 5})
    assert collector.messages_sent == 5
    collector.update_connection_counters("unknown", **counters)  # ignored, like record_*
    assert collector.messages_sent == 5
    collector.unregister_connection("c1")
    assert collector.get_stats()["messages_sent"] == 5
