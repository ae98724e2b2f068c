"""``ReconnectionTracker``: reconnection attempts counted per connection id (netrun-websocket 1.0).

A server (or a client managing several sockets) records each attempt a connection makes and
reads per-connection and overall success rates. Entries live until ``clear_connection``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["ReconnectionTracker"]


class _Attempts:
    __slots__ = ("failed", "first_attempt", "last_attempt", "last_error", "last_success", "total")

    def __init__(self, now: float) -> None:
        self.total = 0
        self.failed = 0
        self.first_attempt = now
        self.last_attempt = now
        self.last_success: float | None = None
        self.last_error: str | None = None


def _rate(successes: int, total: int) -> float:
    return successes / total if total else 0.0


class ReconnectionTracker:
    """Attempts per connection id. ``clock`` (epoch seconds) is injectable for tests."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._connections: dict[str, _Attempts] = {}
        self.total_attempts = 0  # also counts connections cleared since
        self.successful_attempts = 0

    def record_attempt(
        self, connection_id: str, success: bool, error: str | BaseException | None = None
    ) -> None:
        """Count one attempt of ``connection_id``; ``error`` (text or exception) if it failed."""
        if not isinstance(connection_id, str) or not connection_id:
            raise ValueError(f"connection_id must be a non-empty string, got {connection_id!r}")
        now = self._clock()
        entry = self._connections.get(connection_id)
        if entry is None:
            entry = self._connections[connection_id] = _Attempts(now)
        entry.total += 1
        entry.last_attempt = now
        self.total_attempts += 1
        if success:
            entry.last_success = now
            self.successful_attempts += 1
        else:
            entry.failed += 1
            if isinstance(error, BaseException):
                error = f"{type(error).__name__}: {error}"
            entry.last_error = error

    def get_connection_stats(self, connection_id: str) -> dict[str, Any] | None:
        """Attempts of one connection id, or None if none were recorded (or it was cleared)."""
        entry = self._connections.get(connection_id)
        if entry is None:
            return None
        successful = entry.total - entry.failed
        return {
            "connection_id": connection_id,
            "total_attempts": entry.total,
            "successful_attempts": successful,
            "failed_attempts": entry.failed,
            "success_rate": _rate(successful, entry.total),
            "first_attempt": entry.first_attempt,
            "last_attempt": entry.last_attempt,
            "last_success": entry.last_success,
            "last_error": entry.last_error,
        }

    def get_global_stats(self) -> dict[str, Any]:
        """Totals over every attempt recorded, and how many connection ids are tracked."""
        return {
            "tracked_connections": len(self._connections),
            "total_attempts": self.total_attempts,
            "successful_attempts": self.successful_attempts,
            "failed_attempts": self.total_attempts - self.successful_attempts,
            "success_rate": _rate(self.successful_attempts, self.total_attempts),
        }

    def clear_connection(self, connection_id: str) -> bool:
        """Forget ``connection_id``'s attempts (the global totals keep them); False if unknown."""
        return self._connections.pop(connection_id, None) is not None
