"""In-process connection and message metrics (netrun-websocket's ``MetricsCollector``).

Recording runs on every message, so each ``record_*`` call is a dict lookup and a few integer
additions. Memory is bounded: per-connection counters live only while the connection is
registered, and latency keeps the last ``latency_window`` samples (a ring buffer). Recording for
an unknown connection id never raises; it is counted in the global totals only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from netrun_ws.ids_by_user import IdsByUser
from netrun_ws.metric_records import ConnectionMetrics, LatencyMetrics, check_latency

__all__ = ["MetricsCollector"]


@dataclass(slots=True)
class _ConnectionCounters(ConnectionMetrics):
    """A registered connection's counters; ``started`` is on the collector's monotonic clock."""

    started: float = 0.0

    def snapshot(self, now: float) -> dict[str, Any]:
        """Every counter field, and the duration on the collector's clock."""
        counters = {name: getattr(self, name) for name in _COUNTER_FIELDS}
        return {**counters, "duration_seconds": now - self.started}


_COUNTER_FIELDS = tuple(item.name for item in fields(ConnectionMetrics))


def _check_size(size_bytes: int) -> None:
    if size_bytes < 0:
        raise ValueError(f"size_bytes must be >= 0, got {size_bytes!r}")


class MetricsCollector:
    """Count connections, messages, bytes, errors and latency; summarise them on demand.

    ``latency_window``: how many recent latency samples feed the latency statistics.
    ``clock`` (monotonic) and ``wall_clock`` are injectable for tests.
    """

    def __init__(
        self,
        *,
        latency_window: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(latency_window, bool) or not isinstance(latency_window, int):
            raise ValueError(f"latency_window must be a positive integer, got {latency_window!r}")
        if latency_window < 1:
            raise ValueError(f"latency_window must be >= 1, got {latency_window!r}")
        self._clock = clock
        self._wall_clock = wall_clock
        self._started = clock()
        self._connections: dict[str, _ConnectionCounters] = {}
        self._user_connections = IdsByUser()
        # A ring buffer keeps recording O(1); reads build a LatencyMetrics from it.
        self._latency: deque[float] = deque(maxlen=latency_window)
        self._latency_recorded = 0
        self.total_connections = 0
        self.peak_connections = 0
        self.messages_sent = 0
        self.messages_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.errors = 0

    # -- connections ---------------------------------------------------------------------------

    def register_connection(self, connection_id: str, user_id: str) -> None:
        """Start counting for ``connection_id`` (re-registering an id starts it afresh)."""
        if connection_id in self._connections:
            self.unregister_connection(connection_id)
        connected_at = self._wall_clock()
        self._connections[connection_id] = _ConnectionCounters(
            connection_id, user_id, connected_at, last_activity=connected_at, started=self._clock()
        )
        self._user_connections.add(user_id, connection_id)
        self.total_connections += 1
        self.peak_connections = max(self.peak_connections, len(self._connections))

    def unregister_connection(self, connection_id: str) -> dict[str, Any] | None:
        """Stop counting for ``connection_id``; returns its final metrics (None if unknown).

        Global totals keep what the connection contributed.
        """
        counters = self._forget(connection_id)
        return None if counters is None else counters.snapshot(self._clock())

    def discard_connection(self, connection_id: str) -> None:
        """``unregister_connection`` for a caller that does not read the final metrics (none
        are built: a dict of every counter per closed connection)."""
        self._forget(connection_id)

    def _forget(self, connection_id: str) -> _ConnectionCounters | None:
        counters = self._connections.pop(connection_id, None)
        if counters is None:
            return None
        self._user_connections.discard(counters.user_id, connection_id)
        return counters

    # -- recording (hot path) -------------------------------------------------------------------

    def record_message_sent(self, connection_id: str, size_bytes: int = 0) -> None:
        """Count one outbound message of ``size_bytes`` (ValueError if negative)."""
        _check_size(size_bytes)
        self.messages_sent += 1
        self.bytes_sent += size_bytes
        counters = self._connections.get(connection_id)
        if counters is not None:
            counters.messages_sent += 1
            counters.bytes_sent += size_bytes
            counters.last_activity = self._wall_clock()

    def record_message_received(self, connection_id: str, size_bytes: int = 0) -> None:
        """Count one inbound message of ``size_bytes`` (ValueError if negative)."""
        _check_size(size_bytes)
        self.messages_received += 1
        self.bytes_received += size_bytes
        counters = self._connections.get(connection_id)
        if counters is not None:
            counters.messages_received += 1
            counters.bytes_received += size_bytes
            counters.last_activity = self._wall_clock()

    def update_connection_counters(
        self,
        connection_id: str,
        *,
        messages_sent: int,
        messages_received: int,
        bytes_sent: int,
        bytes_received: int,
        last_activity: float | None = None,
    ) -> None:
        """Take a registered connection's traffic counters from a source that counts them already
        (a :class:`netrun_ws.connection.Connection`), instead of one ``record_*`` call per
        message. The global totals grow by the difference; an unknown id is ignored."""
        counters = self._connections.get(connection_id)
        if counters is None:
            return
        self.messages_sent += max(0, messages_sent - counters.messages_sent)
        self.messages_received += max(0, messages_received - counters.messages_received)
        self.bytes_sent += max(0, bytes_sent - counters.bytes_sent)
        self.bytes_received += max(0, bytes_received - counters.bytes_received)
        counters.messages_sent = messages_sent
        counters.messages_received = messages_received
        counters.bytes_sent = bytes_sent
        counters.bytes_received = bytes_received
        if last_activity is not None:
            counters.last_activity = max(counters.last_activity, last_activity)

    def record_error(self, connection_id: str) -> None:
        """Count one error, for the connection too if it is registered."""
        self.errors += 1
        counters = self._connections.get(connection_id)
        if counters is not None:
            counters.errors += 1

    def record_latency(self, latency_ms: float) -> None:
        """Add a latency sample in milliseconds (ValueError unless finite and >= 0)."""
        self._latency.append(check_latency(latency_ms))
        self._latency_recorded += 1

    @property
    def latency_samples(self) -> int:
        """Every latency sample ever recorded (the window keeps the last ``latency_window``)."""
        return self._latency_recorded

    # -- reading --------------------------------------------------------------------------------

    @property
    def active_connections(self) -> int:
        """Connections registered now."""
        return len(self._connections)

    def get_connection_metrics(self, connection_id: str) -> dict[str, Any] | None:
        """Counters of one registered connection, or None if it is not registered."""
        counters = self._connections.get(connection_id)
        if counters is None:
            return None
        return counters.snapshot(self._clock())

    def get_user_metrics(self, user_id: str) -> dict[str, Any]:
        """Sums over the user's registered connections (zeros for a user with none)."""
        connection_ids = sorted(self._user_connections.ids(user_id))
        members = [self._connections[connection_id] for connection_id in connection_ids]
        return {
            "user_id": user_id,
            "active_connections": len(connection_ids),
            "connection_ids": connection_ids,
            "messages_sent": sum(c.messages_sent for c in members),
            "messages_received": sum(c.messages_received for c in members),
            "bytes_sent": sum(c.bytes_sent for c in members),
            "bytes_received": sum(c.bytes_received for c in members),
            "errors": sum(c.errors for c in members),
        }

    def get_latency_stats(self) -> dict[str, float | int]:
        """avg/min/max/p50/p95/p99 (ms) over the latency window; 0.0 each when there are none.

        Percentiles use the nearest-rank method. ``samples`` is the window size in use,
        ``total_samples`` every sample ever recorded.
        """
        window = LatencyMetrics(list(self._latency), self._latency.maxlen or 1).to_dict()
        return {
            "avg": window["average_ms"],
            "min": window["min_ms"],
            "max": window["max_ms"],
            "p50": window["p50_ms"],
            "p95": window["p95_ms"],
            "p99": window["p99_ms"],
            "samples": window["sample_count"],
            "total_samples": self.latency_samples,
        }

    def get_stats(self) -> dict[str, Any]:
        """Everything at once: connections, totals, latency (``latency_*_ms``) and uptime."""
        latency = self.get_latency_stats()
        return {
            "active_connections": len(self._connections),
            "peak_connections": self.peak_connections,
            "total_connections": self.total_connections,
            "unique_users": len(self._user_connections),
            "messages_sent": self.messages_sent,
            "messages_received": self.messages_received,
            "total_messages": self.messages_sent + self.messages_received,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "total_bytes": self.bytes_sent + self.bytes_received,
            "errors": self.errors,
            "latency_avg_ms": latency["avg"],
            "latency_min_ms": latency["min"],
            "latency_max_ms": latency["max"],
            "latency_p50_ms": latency["p50"],
            "latency_p95_ms": latency["p95"],
            "latency_p99_ms": latency["p99"],
            "latency_samples": latency["samples"],
            "uptime_seconds": self._clock() - self._started,
        }
