"""netrun-websocket 1.0's metric records: ``ConnectionMetrics`` and ``LatencyMetrics``.

``ConnectionMetrics`` is one connection's counters with rate helpers; ``LatencyMetrics`` a
bounded window of latency samples with average, min, max and nearest-rank percentiles.
``MetricsCollector`` keeps its latency window in a ``LatencyMetrics``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["ConnectionMetrics", "LatencyMetrics"]


@dataclass(slots=True)
class ConnectionMetrics:
    """Counters of one connection. Times are epoch seconds; rates are per second of its life."""

    connection_id: str
    user_id: str
    connected_at: float = field(default_factory=time.time)
    last_activity: float | None = None
    messages_sent: int = 0
    messages_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    errors: int = 0

    def get_duration(self, now: float | None = None) -> float:
        """Seconds since ``connected_at`` (never negative)."""
        return max(0.0, (time.time() if now is None else now) - self.connected_at)

    def get_message_rate(self, now: float | None = None) -> float:
        """Messages (both directions) per second; 0.0 for a connection with no age yet."""
        return self._per_second(self.messages_sent + self.messages_received, now)

    def get_bandwidth_sent(self, now: float | None = None) -> float:
        """Bytes sent per second."""
        return self._per_second(self.bytes_sent, now)

    def get_bandwidth_received(self, now: float | None = None) -> float:
        """Bytes received per second."""
        return self._per_second(self.bytes_received, now)

    def _per_second(self, count: int, now: float | None) -> float:
        duration = self.get_duration(now)
        return count / duration if duration > 0 else 0.0

    def counters(self) -> dict[str, Any]:
        """Every field, as a dict."""
        return {name: getattr(self, name) for name in _METRIC_FIELDS}

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """The counters, the duration and the rates."""
        return {
            **self.counters(),
            "duration_seconds": self.get_duration(now),
            "message_rate": self.get_message_rate(now),
            "bandwidth_sent": self.get_bandwidth_sent(now),
            "bandwidth_received": self.get_bandwidth_received(now),
        }


_METRIC_FIELDS = tuple(item.name for item in fields(ConnectionMetrics))


def _nearest_rank(ordered: list[float], percent: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


class LatencyMetrics:
    """The last ``max_samples`` latencies (milliseconds); 0.0 for every statistic when empty."""

    __slots__ = ("max_samples", "samples", "total_samples")

    def __init__(self, max_samples: int = 1000) -> None:
        if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
            raise ValueError(f"max_samples must be a positive integer, got {max_samples!r}")
        self.max_samples = max_samples
        self.samples: deque[float] = deque(maxlen=max_samples)
        self.total_samples = 0  # every sample ever added, not only the window

    def add_sample(self, latency_ms: float) -> None:
        """Add one sample (ValueError unless finite and >= 0); the oldest leaves a full window."""
        if not 0.0 <= latency_ms < math.inf:  # also rejects NaN
            raise ValueError(f"latency_ms must be a finite number >= 0, got {latency_ms!r}")
        self.samples.append(float(latency_ms))
        self.total_samples += 1

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
        return _nearest_rank(sorted(self.samples), percentile) if self.samples else 0.0

    def summary(self) -> dict[str, float]:
        """avg, min, max, p50, p95 and p99 from one sort of the window."""
        ordered = sorted(self.samples)
        if not ordered:
            return dict.fromkeys(("avg", "min", "max", "p50", "p95", "p99"), 0.0)
        return {
            "avg": math.fsum(ordered) / len(ordered),
            "min": ordered[0],
            "max": ordered[-1],
            "p50": _nearest_rank(ordered, 50),
            "p95": _nearest_rank(ordered, 95),
            "p99": _nearest_rank(ordered, 99),
        }

    def __len__(self) -> int:
        return len(self.samples)
