"""netrun-websocket 1.0's module paths and public names, each with 1.0's meaning (issue 16).

Every name 1.0 exported is importable from its 1.0 submodule of ``netrun.websocket``, from
``netrun.websocket`` itself and from ``netrun_ws``, as one object. The records and helpers 1.0 had
besides netrun-ws's classes are checked here as pure logic; tests/library/
test_readme_patterns_compat.py runs them inside real apps.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import json
import pickle
import time
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import netrun.websocket
import netrun_ws
from netrun_ws.connection_metadata import ConnectionMetadata
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


# -- the 1.0 signatures, field order and types ------------------------------------------------


def init_parameters(cls: type) -> list[tuple[str, Any]]:
    """(name, default) of ``cls``'s constructor parameters, ``self`` left out."""
    parameters = inspect.signature(cls).parameters.values()
    return [(p.name, p.default) for p in parameters]


def field_types(cls: type) -> list[tuple[str, Any]]:
    """(name, annotation) of a dataclass's fields, in order, annotations resolved."""
    hints = typing.get_type_hints(cls)
    return [(item.name, hints[item.name]) for item in dataclasses.fields(cls)]


EMPTY = inspect.Parameter.empty


def test_connection_metadata_signature_is_1_0s() -> None:
    assert init_parameters(ConnectionMetadata) == [
        ("connection_id", EMPTY), ("user_id", EMPTY), ("websocket", EMPTY),
        ("session_id", None), ("ip_address", None), ("user_agent", None), ("endpoint", "/ws"),
        ("metadata", None),
    ]  # fmt: skip


def test_connection_metrics_fields_are_1_0s() -> None:
    assert field_types(ConnectionMetrics) == [
        ("connection_id", str), ("user_id", str), ("connected_at", float),
        ("messages_sent", int), ("messages_received", int), ("bytes_sent", int),
        ("bytes_received", int), ("errors", int), ("last_activity", float),
    ]  # fmt: skip
    assert init_parameters(ConnectionMetrics)[2] == ("connected_at", EMPTY)  # required
    assert [p[1] for p in init_parameters(ConnectionMetrics)[3:8]] == [0, 0, 0, 0, 0]
    for method in (
        "get_duration", "get_send_rate", "get_receive_rate", "get_bandwidth_sent",
        "get_bandwidth_received",
    ):  # fmt: skip
        getattr(ConnectionMetrics("c", "u", 1.0), method)()  # callable with no argument
    assert not hasattr(ConnectionMetrics, "get_message_rate")


def test_latency_metrics_fields_and_methods_are_1_0s() -> None:
    assert field_types(LatencyMetrics) == [("samples", list[float]), ("max_samples", int)]
    assert init_parameters(LatencyMetrics)[1] == ("max_samples", 1000)
    assert (
        LatencyMetrics().samples == [] and LatencyMetrics().samples is not LatencyMetrics().samples
    )
    assert list(inspect.signature(LatencyMetrics.record).parameters) == ["self", "latency_ms"]
    assert list(inspect.signature(LatencyMetrics.get_percentile).parameters) == [
        "self",
        "percentile",
    ]
    assert not hasattr(LatencyMetrics, "add_sample") and not hasattr(LatencyMetrics, "summary")


def test_session_records_fields_are_1_0s() -> None:
    assert field_types(WebSocketConnection) == [
        ("connection_id", str), ("session_id", str), ("user_id", str), ("username", str),
        ("connected_at", str), ("last_heartbeat", str), ("client_ip", str | None),
        ("user_agent", str | None), ("tab_id", str | None), ("metadata", dict[str, Any]),
    ]  # fmt: skip
    assert [p[1] for p in init_parameters(WebSocketConnection)[6:9]] == [None, None, None]
    assert field_types(SessionState) == [
        ("conversation_id", str | None), ("active_workspace_id", int | None),
        ("active_persona_id", int | None), ("voice_session_config", dict[str, Any] | None),
        ("emotion_history", list[dict[str, Any]]), ("recent_messages", list[dict[str, Any]]),
    ]  # fmt: skip
    assert SessionState() == SessionState(None, None, None, None, [], [])
    assert SessionState().emotion_history is not SessionState().emotion_history


def test_reconnection_tracker_signatures_are_1_0s() -> None:
    assert init_parameters(ReconnectionTracker) == [("clock", time.time)]  # keyword-only
    assert list(inspect.signature(ReconnectionTracker.record_attempt).parameters)[:3] == [
        "self",
        "connection_id",
        "success",
    ]
    clear = inspect.signature(ReconnectionTracker.clear_connection)
    assert list(clear.parameters) == ["self", "connection_id"]
    assert clear.return_annotation in (None, "None")
    assert ReconnectionTracker().connections == {}


def test_heartbeat_config_and_auth_signatures_are_1_0s() -> None:
    assert [(item.name, item.default) for item in dataclasses.fields(HeartbeatConfig)] == [
        ("interval", 30), ("timeout", 90), ("max_missed", 3), ("enabled", True),
    ]  # fmt: skip
    assert inspect.iscoroutinefunction(netrun_ws.authenticate_websocket)
    assert list(inspect.signature(netrun_ws.authenticate_websocket).parameters) == [
        "websocket", "token", "auth_service",
    ]  # fmt: skip
    assert list(inspect.signature(netrun_ws.TokenAuthMiddleware).parameters) == ["auth_service"]
    authenticate = netrun_ws.TokenAuthMiddleware.authenticate
    assert inspect.iscoroutinefunction(authenticate)
    assert list(inspect.signature(authenticate).parameters) == ["self", "websocket", "token"]


# -- ConnectionMetadata ---------------------------------------------------------------------------


def test_connection_metadata_record_and_to_dict() -> None:
    before = datetime.now(UTC)
    record = ConnectionMetadata("c1", "u1", None, "s1", "10.0.0.1")  # type: ignore[arg-type]
    after = datetime.now(UTC)
    assert (record.connection_id, record.user_id, record.session_id) == ("c1", "u1", "s1")
    assert record.websocket is None and record.ip_address == "10.0.0.1"
    assert record.user_agent is None and record.endpoint == "/ws"
    assert record.state is ConnectionState.CONNECTED
    for moment in (record.connected_at, record.last_activity, record.last_ping):
        assert isinstance(moment, datetime) and moment.utcoffset() == timedelta(0)
        assert before <= moment <= after
    assert record.message_count == record.bytes_sent == record.bytes_received == 0
    assert record.metadata == {}
    data = record.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert list(data) == [
        "connection_id", "user_id", "session_id", "state", "endpoint", "connected_at",
        "last_activity", "last_ping", "message_count", "bytes_sent", "bytes_received",
        "ip_address", "user_agent", "metadata",
    ]  # fmt: skip
    assert data["state"] == "connected"
    assert datetime.fromisoformat(data["connected_at"]) == record.connected_at
    given = {"room": "a"}
    assert ConnectionMetadata("c", "u", None, metadata=given).metadata is given


# -- session_manager records ----------------------------------------------------------------------


def test_websocket_connection_attributes_and_dict_view() -> None:
    record = WebSocketConnection(
        "c", "s", "u", "Ann", "2026-01-02T03:04:05+00:00", "2026-01-02T03:04:06", tab_id="t"
    )
    assert (record.connected_at, record.tab_id, record.metadata) == (
        "2026-01-02T03:04:05+00:00", "t", {},
    )  # fmt: skip
    # netrun-ws's dict view: epoch seconds (a time without offset is UTC) and ``state``.
    epoch = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert (record["connected_at"], record["last_heartbeat"]) == (epoch, epoch + 1)
    assert record["state"] == "connected" and len(record) == 11
    assert record == {**record.to_dict()} and json.loads(json.dumps(record.to_dict()))
    exact = WebSocketConnection.from_epochs(
        connection_id="c", session_id="s", user_id="u", username="Ann",
        connected_at=1.0000001, last_heartbeat=2.5,
    )  # fmt: skip
    assert exact.connected_at == "1970-01-01T00:00:01.000000+00:00"
    assert (exact["connected_at"], exact["last_heartbeat"]) == (1.0000001, 2.5)  # not rounded
    for twin in (copy.copy(exact), copy.deepcopy(exact), pickle.loads(pickle.dumps(exact))):
        assert twin == exact and twin.connected_at == exact.connected_at
        assert twin["connected_at"] == 1.0000001


def test_session_state_record() -> None:
    state = SessionState(conversation_id="conv-1", active_workspace_id=3)
    state.recent_messages.append({"role": "user", "text": "hi"})
    assert state.to_dict() == {
        "conversation_id": "conv-1", "active_workspace_id": 3, "active_persona_id": None,
        "voice_session_config": None, "emotion_history": [],
        "recent_messages": [{"role": "user", "text": "hi"}],
    }  # fmt: skip


async def test_session_state_round_trips_through_the_session_manager() -> None:
    """docs/library.md: ``save_connection_state(cid, state.to_dict())``, then
    ``SessionState(**restored)``."""
    sessions = netrun_ws.WebSocketSessionManager()
    cid = await sessions.create_connection("s1", "u1", "Ann")
    state = SessionState(conversation_id="conv-9", voice_session_config={"voice": "low"})
    state.emotion_history.append({"emotion": "calm", "score": 0.5})
    assert await sessions.save_connection_state(cid, state.to_dict()) is True
    restored = await sessions.restore_connection_state(cid)
    assert restored is not None and SessionState(**restored) == state
    await sessions.close()


# -- metrics --------------------------------------------------------------------------------------


def test_connection_metrics_rates_and_bandwidth() -> None:
    before = time.time()
    metrics = ConnectionMetrics("c1", "u1", 100.0)
    assert before <= metrics.last_activity <= time.time()
    metrics.messages_sent, metrics.messages_received = 6, 4
    metrics.bytes_sent, metrics.bytes_received = 1000, 500
    assert metrics.get_duration(now=110.0) == 10.0
    assert metrics.get_send_rate(now=110.0) == 0.6
    assert metrics.get_receive_rate(now=110.0) == 0.4
    assert metrics.get_bandwidth_sent(now=110.0) == 100.0
    assert metrics.get_bandwidth_received(now=110.0) == 50.0
    assert metrics.get_send_rate(now=100.0) == 0.0  # no age yet: no division by zero
    assert metrics.get_receive_rate(now=90.0) == 0.0
    assert metrics.to_dict(now=110.0) == {
        "connection_id": "c1", "user_id": "u1", "connected_at": 100.0, "duration_seconds": 10.0,
        "messages_sent": 6, "messages_received": 4, "bytes_sent": 1000, "bytes_received": 500,
        "errors": 0, "send_rate_per_sec": 0.6, "receive_rate_per_sec": 0.4,
        "bandwidth_sent_per_sec": 100.0, "bandwidth_received_per_sec": 50.0,
        "last_activity": metrics.last_activity,
    }  # fmt: skip
    assert list(metrics.to_dict()) == list(metrics.to_dict(now=110.0))  # 1.0's key order
    assert ConnectionMetrics("c", "u", time.time() - 100).get_duration() >= 100


def test_latency_metrics_window() -> None:
    latency = LatencyMetrics(max_samples=4)
    assert (latency.get_average(), latency.get_min(), latency.get_max()) == (0.0, 0.0, 0.0)
    assert latency.get_percentile(99) == 0.0
    assert latency.to_dict() == {
        "sample_count": 0, "average_ms": 0.0, "min_ms": 0.0, "max_ms": 0.0, "p50_ms": 0.0,
        "p75_ms": 0.0, "p90_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0,
    }  # fmt: skip
    for sample in (50.0, 1.0, 2.0, 3.0, 4.0):  # 50.0 leaves the window
        latency.record(sample)
    assert latency.samples == [1.0, 2.0, 3.0, 4.0]
    assert (latency.get_average(), latency.get_min(), latency.get_max()) == (2.5, 1.0, 4.0)
    assert [latency.get_percentile(p) for p in (0, 50, 75, 100)] == [1.0, 2.0, 3.0, 4.0]
    assert latency.to_dict() == {
        "sample_count": 4, "average_ms": 2.5, "min_ms": 1.0, "max_ms": 4.0, "p50_ms": 2.0,
        "p75_ms": 3.0, "p90_ms": 4.0, "p95_ms": 4.0, "p99_ms": 4.0,
    }  # fmt: skip
    assert LatencyMetrics([5.0, 6.0, 7.0], 2).samples == [6.0, 7.0]  # a given list is bounded too
    with pytest.raises(ValueError, match="percentile"):
        latency.get_percentile(101)
    with pytest.raises(ValueError, match="latency_ms"):
        latency.record(-1)
    with pytest.raises(ValueError, match="max_samples"):
        LatencyMetrics(max_samples=0)


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
    assert tracker.get_global_stats() == {
        "total_connections": 0, "total_attempts": 0, "successful_attempts": 0,
        "failed_attempts": 0, "success_rate": "0.00%",
    }  # fmt: skip
    tracker.record_attempt("c1", False, ConnectionError("refused"))
    assert tracker.get_connection_stats("c1") == {
        "total_attempts": 1, "successful_attempts": 0, "failed_attempts": 1,
        "last_attempt": 1000.0, "last_success": None,
    }  # fmt: skip
    clock.advance(2)
    for success in (True, True):
        tracker.record_attempt("c1", success)
    tracker.record_attempt("c2", False, "timeout")
    stats = tracker.get_connection_stats("c1")
    assert stats is tracker.connections["c1"]
    assert stats == {
        "total_attempts": 3, "successful_attempts": 2, "failed_attempts": 1,
        "last_attempt": 1002.0, "last_success": 1002.0,
    }  # fmt: skip
    assert tracker.get_last_error("c1") == "ConnectionError: refused"
    assert tracker.get_last_error("c2") == "timeout" and tracker.get_last_error("c3") is None
    assert tracker.get_global_stats() == {
        "total_connections": 2, "total_attempts": 4, "successful_attempts": 2,
        "failed_attempts": 2, "success_rate": "50.00%",
    }  # fmt: skip
    tracker.record_attempt("c2", True)
    tracker.record_attempt("c2", True)
    tracker.record_attempt("c2", True)
    assert tracker.get_global_stats()["success_rate"] == "71.43%"  # 5 of 7
    tracker.clear_connection("c1")
    tracker.clear_connection("c1")  # unknown now: ignored
    assert tracker.get_connection_stats("c1") is None and tracker.get_last_error("c1") is None
    assert tracker.get_global_stats() == {
        "total_connections": 1, "total_attempts": 4, "successful_attempts": 3,
        "failed_attempts": 1, "success_rate": "75.00%",
    }  # fmt: skip
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
