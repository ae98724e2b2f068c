"""netrun-websocket 1.0's metric records: ``ConnectionMetrics`` and ``LatencyMetrics``.

``ConnectionMetrics`` is one connection's counters with rate helpers; ``LatencyMetrics`` a
bounded window of latency samples with average, min, max and nearest-rank percentiles. Both have
1.0's fields, methods and ``to_dict()`` keys. ``MetricsCollector`` builds its latency statistics
with a ``LatencyMetrics``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ConnectionMetrics", "LatencyMetrics", "check_latency"]


@dataclass(slots=True)
class ConnectionMetrics:
    """Counters of one connection. Times are epoch seconds; rates are per second of its life.

    Every method takes an optional ``now`` (epoch seconds; default: the current time) so a
    caller can read several values for one instant.
    """

    connection_id: str
    user_id: str
    connected_at: float
    messages_sent: int = 0
    messages_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    errors: int = 0
    last_activity: float = field(default_factory=time.time)

    def get_duration(self, now: float | None = None) -> float:
        """Seconds since ``connected_at`` (never negative)."""
        return max(0.0, (time.time() if now is None else now) - self.connected_at)

    def get_send_rate(self, now: float | None = None) -> float:
        """Messages sent per second; 0.0 for a connection with no age yet."""
        return self._per_second(self.messages_sent, now)

    def get_receive_rate(self, now: float | None = None) -> float:
        """Messages received per second."""
        return self._per_second(self.messages_received, now)

    def get_bandwidth_sent(self, now: float | None = None) -> float:
        """Bytes sent per second."""
        return self._per_second(self.bytes_sent, now)

    def get_bandwidth_received(self, now: float | None = None) -> float:
        """Bytes received per second."""
        return self._per_second(self.bytes_received, now)

    def _per_second(self, count: int, now: float | None) -> float:
        duration = self.get_duration(now)
        return count / duration if duration > 0 else 0.0

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """The counters, the duration and the rates, under 1.0's keys and in 1.0's order."""
        now = time.time() if now is None else now
        return {
            "connection_id": self.connection_id,
            "user_id": self.user_id,
            "connected_at": self.connected_at,
            "duration_seconds": self.get_duration(now),
            "messages_sent": self.messages_sent,
            "messages_received": self.messages_received,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "errors": self.errors,
            "send_rate_per_sec": self.get_send_rate(now),
            "receive_rate_per_sec": self.get_receive_rate(now),
            "bandwidth_sent_per_sec": self.get_bandwidth_sent(now),
            "bandwidth_received_per_sec": self.get_bandwidth_received(now),
            "last_activity": self.last_activity,
        }


def _nearest_rank(ordered: list[float], percent: float) -> float:
    """Nearest-rank percentile of an ascending list; 0.0 for an empty one."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def check_latency(latency_ms: float) -> float:
    """``latency_ms`` as a float, or ValueError unless it is finite and >= 0."""
    if not 0.0 <= latency_ms < math.inf:  # also rejects NaN
        raise ValueError(f"latency_ms must be a finite number >= 0, got {latency_ms!r}")
    return float(latency_ms)


#: The percentiles ``LatencyMetrics.to_dict`` reports, as in 1.0.
_REPORTED_PERCENTILES = (50, 75, 90, 95, 99)


@dataclass(slots=True)
class LatencyMetrics:
    """The last ``max_samples`` latencies (milliseconds); 0.0 for every statistic when empty.

    Samples must be finite and >= 0 and ``max_samples`` a positive integer (ValueError
    otherwise): a metric that silently absorbs garbage hides bugs.
    """

    samples: list[float] = field(default_factory=list)
    max_samples: int = 1000

    def __post_init__(self) -> None:
        limit = self.max_samples
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"max_samples must be a positive integer, got {limit!r}")
        self.samples = [check_latency(sample) for sample in self.samples[-limit:]]

    def record(self, latency_ms: float) -> None:
        """Add one sample; the oldest leaves a full window."""
        self.samples.append(check_latency(latency_ms))
        if len(self.samples) > self.max_samples:
            del self.samples[0]

    def get_average(self) -> float:
        return math.fsum(self.samples) / len(self.samples) if self.samples else 0.0

    def get_min(self) -> float:
        return min(self.samples, default=0.0)

    def get_max(self) -> float:
        return max(self.samples, default=0.0)

    def get_percentile(self, percentile: float) -> float:
        """Nearest-rank ``percentile`` (0-100) of the window; ValueError outside 0-100."""
        if not 0 <= percentile <= 100:
            raise ValueError(f"percentile must be between 0 and 100, got {percentile!r}")
        return _nearest_rank(sorted(self.samples), percentile)

    def to_dict(self) -> dict[str, Any]:
        """Count, average, min, max and p50/p75/p90/p95/p99 (ms), from one sort of the window."""
        ordered = sorted(self.samples)
        stats: dict[str, Any] = {
            "sample_count": len(ordered),
            "average_ms": self.get_average(),
            "min_ms": ordered[0] if ordered else 0.0,
            "max_ms": ordered[-1] if ordered else 0.0,
        }
        for percent in _REPORTED_PERCENTILES:
            stats[f"p{percent}_ms"] = _nearest_rank(ordered, percent)
        return stats
