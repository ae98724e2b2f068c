"""netrun-websocket 1.0's module paths and public names, each with 1.0's meaning (issue 16).

Every name 1.0 exported is importable from its 1.0 submodule of ``netrun.websocket``, from
``netrun.websocket`` itself and from ``netrun_ws``, as one object. The records and helpers 1.0 had
besides netrun-ws's classes are checked here as pure logic; tests/library/
test_readme_patterns_compat.py runs them inside real apps.
"""

from __future__ import annotations

import importlib
import inspect
import json

import pytest

import netrun.websocket
import netrun_ws
from netrun_ws.heartbeat import HeartbeatConfig, HeartbeatMonitor
from netrun_ws.metric_records import ConnectionMetrics, LatencyMetrics
from netrun_ws.metrics import MetricsCollector
from netrun_ws.protocol import ConnectionState
from netrun_ws.reconnection import ReconnectionConfig, ReconnectionManager
from netrun_ws.reconnection_tracker import ReconnectionTracker
from netrun_ws.session_records import SessionState, WebSocketConnection
from tests.support.manual_time import ManualTime

#: 1.0's submodules and the names each exported.
NAMES_BY_MODULE = {
    "auth": ["JWTAuthService", "authenticate_websocket", "TokenAuthMiddleware"],
    "connection_manager": ["WebSocketConnectionManager", "ConnectionMetadata"],
    "heartbeat": ["HeartbeatConfig", "HeartbeatMonitor"],
    "metrics": ["MetricsCollector", "ConnectionMetrics", "LatencyMetrics"],
    "protocol": [
        "MessageType",
        "ConnectionState",
        "WebSocketMessage",
        "PingMessage",
        "PongMessage",
        "ErrorMessage",
        "UserMessage",
        "TypingIndicatorMessage",
        "PresenceUpdateMessage",
        "NotificationMessage",
        "ConnectionInfo",
        "parse_message",
    ],
    "reconnection": ["ReconnectionConfig", "ReconnectionManager", "ReconnectionTracker"],
    "session_manager": ["WebSocketSessionManager", "WebSocketConnection", "SessionState"],
}
PAIRS = [(module, name) for module, names in NAMES_BY_MODULE.items() for name in names]


@pytest.mark.parametrize(("module", "name"), PAIRS, ids=[f"{m}.{n}" for m, n in PAIRS])
def test_importable_from_its_1_0_path_and_the_package(module: str, name: str) -> None:
    submodule = importlib.import_module(f"netrun.websocket.{module}")
    value = getattr(submodule, name)
    assert name in submodule.__all__
    assert getattr(netrun.websocket, name) is value
    assert getattr(netrun_ws, name) is value
    assert name in netrun.websocket.__all__ and name in netrun_ws.__all__


def test_every_submodule_exports_only_what_it_defines() -> None:
    for module in NAMES_BY_MODULE:
        submodule = importlib.import_module(f"netrun.websocket.{module}")
        assert all(hasattr(submodule, name) for name in submodule.__all__), module


def test_connect_takes_1_0_arguments_in_1_0_order() -> None:
    parameters = inspect.signature(netrun_ws.WebSocketConnectionManager.connect).parameters
    positional = [
        (p.name, p.default)
        for p in parameters.values()
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ][1:]  # self
    assert positional[:2] == [
        ("websocket", inspect.Parameter.empty),
        ("user_id", inspect.Parameter.empty),
    ]
    assert positional[2:] == [
        ("session_id", None),
        ("endpoint", "/ws"),
        ("ip_address", None),
        ("user_agent", None),
        ("metadata", None),
    ]


# -- ConnectionMetadata ---------------------------------------------------------------------------


def test_connection_metadata_record_and_to_dict() -> None:
    record = netrun_ws.ConnectionMetadata(
        connection_id="c1", user_id="u1", websocket=None, ip_address="10.0.0.1"
    )
    assert record.state is ConnectionState.CONNECTED and record.endpoint == "/ws"
    assert record.message_count == record.bytes_sent == record.bytes_received == 0
    assert record.last_ping is None and record.metadata == {}
    data = record.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert "websocket" not in data and data["state"] == "connected"
    assert set(data) == {
        "connection_id", "user_id", "session_id", "state", "connected_at", "last_activity",
        "last_ping", "message_count", "bytes_sent", "bytes_received", "ip_address",
        "user_agent", "endpoint", "metadata",
    }  # fmt: skip


# -- session_manager records ----------------------------------------------------------------------


def test_websocket_connection_and_session_state_records() -> None:
    record = WebSocketConnection("c", "s", "u", "Ann", 1.0, 2.0, tab_id="t")
    assert record == {**record.to_dict()} and record["last_heartbeat"] == 2.0
    assert len(record) == 11 and list(record)[:4] == [
        "connection_id",
        "session_id",
        "user_id",
        "username",
    ]
    state = SessionState(session_id="s", user_id="u", state={"cursor": 1}, saved_at=5.0)
    assert state.to_dict() == {
        "session_id": "s", "user_id": "u", "state": {"cursor": 1}, "connection_id": None,
        "saved_at": 5.0,
    }  # fmt: skip


# -- metrics --------------------------------------------------------------------------------------


def test_connection_metrics_rates_and_bandwidth() -> None:
    metrics = ConnectionMetrics("c1", "u1", connected_at=100.0)
    metrics.messages_sent, metrics.messages_received = 6, 4
    metrics.bytes_sent, metrics.bytes_received = 1000, 500
    assert metrics.get_duration(now=110.0) == 10.0
    assert metrics.get_message_rate(now=110.0) == 1.0
    assert metrics.get_bandwidth_sent(now=110.0) == 100.0
    assert metrics.get_bandwidth_received(now=110.0) == 50.0
    assert metrics.get_message_rate(now=100.0) == 0.0  # no age yet: no division by zero
    assert metrics.to_dict(now=110.0)["bandwidth_sent"] == 100.0


def test_latency_metrics_window() -> None:
    latency = LatencyMetrics(max_samples=4)
    assert (latency.get_average(), latency.get_min(), latency.get_max()) == (0.0, 0.0, 0.0)
    assert latency.get_percentile(99) == 0.0
    for sample in (50.0, 1.0, 2.0, 3.0, 4.0):  # 50.0 leaves the window
        latency.add_sample(sample)
    assert len(latency) == 4 and latency.total_samples == 5
    assert (latency.get_average(), latency.get_min(), latency.get_max()) == (2.5, 1.0, 4.0)
    assert [latency.get_percentile(p) for p in (0, 50, 75, 100)] == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="percentile"):
        latency.get_percentile(101)
    with pytest.raises(ValueError, match="latency_ms"):
        latency.add_sample(-1)
    with pytest.raises(ValueError, match="max_samples"):
        LatencyMetrics(0)


def test_record_message_size_defaults_to_zero() -> None:
    collector = MetricsCollector()
    collector.register_connection("c1", "u1")
    collector.record_message_sent("c1")
    collector.record_message_received("c1")
    found = collector.get_connection_metrics("c1")
    assert found is not None
    assert (found["messages_sent"], found["messages_received"], found["bytes_sent"]) == (1, 1, 0)


# -- reconnection ---------------------------------------------------------------------------------


def test_calculate_delay_without_attempt_uses_the_current_one() -> None:
    manager = ReconnectionManager(ReconnectionConfig(jitter=False))
    assert manager.calculate_delay() == 1.0  # no attempt yet
    manager.attempts = 4
    assert manager.calculate_delay() == manager.calculate_delay(4) == 8.0


def test_reconnection_tracker() -> None:
    clock = ManualTime(1000.0)
    tracker = ReconnectionTracker(clock=clock)
    assert tracker.get_connection_stats("c1") is None
    tracker.record_attempt("c1", False, ConnectionError("refused"))
    clock.advance(2)
    tracker.record_attempt("c1", True)
    tracker.record_attempt("c2", False, "timeout")
    stats = tracker.get_connection_stats("c1")
    assert stats is not None
    assert (stats["total_attempts"], stats["successful_attempts"], stats["failed_attempts"]) == (
        2, 1, 1,
    )  # fmt: skip
    assert stats["success_rate"] == 0.5 and stats["last_error"] == "ConnectionError: refused"
    assert (stats["first_attempt"], stats["last_attempt"], stats["last_success"]) == (
        1000.0, 1002.0, 1002.0,
    )  # fmt: skip
    assert tracker.get_global_stats() == {
        "tracked_connections": 2, "total_attempts": 3, "successful_attempts": 1,
        "failed_attempts": 2, "success_rate": 1 / 3,
    }  # fmt: skip
    assert tracker.clear_connection("c1") is True and tracker.clear_connection("c1") is False
    assert tracker.get_connection_stats("c1") is None
    assert tracker.get_global_stats()["tracked_connections"] == 1
    with pytest.raises(ValueError, match="connection_id"):
        tracker.record_attempt("", True)


# -- heartbeat ------------------------------------------------------------------------------------


async def test_disabled_heartbeat_monitor_does_not_start() -> None:
    config = HeartbeatConfig(enabled=False)
    assert HeartbeatConfig().enabled is True
    monitor = HeartbeatMonitor(config)
    await monitor.start(lambda cid: None, lambda cid: None)
    assert monitor.running is False
    await monitor.stop()
    with pytest.raises(ValueError, match="enabled"):
        HeartbeatConfig(enabled="no")  # type: ignore[arg-type]


async def test_heartbeat_readers() -> None:
    clock = ManualTime(0.0)
    monitor = HeartbeatMonitor(HeartbeatConfig(interval=10, timeout=30), clock=clock)
    monitor.register_connection("quiet")
    monitor.register_connection("chatty")
    assert monitor.get_last_heartbeat("quiet") == 0.0 and monitor.get_last_heartbeat("x") is None
    for _ in range(2):
        clock.advance(10)
        await monitor.check_once()
        monitor.update_heartbeat("chatty")
    assert monitor.get_missed_count("quiet") == 1 and monitor.get_missed_count("chatty") == 0
    assert monitor.get_missed_count("unknown") == 0
    assert monitor.get_last_heartbeat("chatty") == 20.0
    assert monitor.get_stale_connections() == []
    clock.advance(11)  # quiet: 31 s of silence
    assert monitor.get_stale_connections() == ["quiet"]
    assert monitor.get_stats()["stale_connections"] == 1


async def test_connect_refuses_metadata_in_the_old_fourth_position() -> None:
    manager = netrun_ws.WebSocketConnectionManager()
    with pytest.raises(ValueError, match=r"endpoint must be a string.*metadata=\.\.\. by keyword"):
        await manager.connect(object(), "u", None, {"room": "a"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="user_agent must be a string or None"):
        await manager.connect(object(), "u", None, "/ws", "10.0.0.1", 42)  # type: ignore[arg-type]
    assert len(manager) == 0
