"""``ReconnectionTracker``: reconnection attempts counted per connection id (netrun-websocket 1.0).

A server (or a client managing several sockets) records each attempt a connection makes and
reads per-connection and overall success rates. ``connections`` holds 1.0's per-connection stats
dicts; entries live until ``clear_connection``, and the global stats sum the tracked ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["ReconnectionTracker"]


class ReconnectionTracker:
    """Attempts per connection id. ``clock`` (epoch seconds) is injectable for tests.

    ``connections[connection_id]`` is a dict with ``total_attempts``, ``successful_attempts``,
    ``failed_attempts``, ``last_attempt`` and ``last_success`` (epoch seconds or None).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.connections: dict[str, dict[str, Any]] = {}
        self._last_errors: dict[str, str | None] = {}

    def record_attempt(
        self, connection_id: str, success: bool, error: str | BaseException | None = None
    ) -> None:
        """Count one attempt of ``connection_id``; ``error`` (text or exception) if it failed."""
        if not isinstance(connection_id, str) or not connection_id:
            raise ValueError(f"connection_id must be a non-empty string, got {connection_id!r}")
        now = self._clock()
        stats = self.connections.setdefault(
            connection_id,
            {
                "total_attempts": 0,
                "successful_attempts": 0,
                "failed_attempts": 0,
                "last_attempt": None,
                "last_success": None,
            },
        )
        stats["total_attempts"] += 1
        stats["last_attempt"] = now
        if success:
            stats["successful_attempts"] += 1
            stats["last_success"] = now
        else:
            stats["failed_attempts"] += 1
            if isinstance(error, BaseException):
                error = f"{type(error).__name__}: {error}"
            self._last_errors[connection_id] = error

    def get_connection_stats(self, connection_id: str) -> dict[str, Any] | None:
        """The stats dict of one connection id (see the class), or None if none were recorded
        (or it was cleared)."""
        return self.connections.get(connection_id)

    def get_last_error(self, connection_id: str) -> str | None:
        """netrun-ws's addition: the error of the connection's last failed attempt, if given."""
        return self._last_errors.get(connection_id)

    def get_global_stats(self) -> dict[str, Any]:
        """Totals over the tracked connections; ``success_rate`` is text such as ``"75.00%"``."""
        tracked = self.connections.values()
        total = sum(stats["total_attempts"] for stats in tracked)
        successful = sum(stats["successful_attempts"] for stats in tracked)
        return {
            "total_connections": len(self.connections),
            "total_attempts": total,
            "successful_attempts": successful,
            "failed_attempts": total - successful,
            "success_rate": f"{successful / total * 100 if total else 0.0:.2f}%",
        }

    def clear_connection(self, connection_id: str) -> None:
        """Forget ``connection_id``'s attempts (an unknown id is ignored)."""
        self.connections.pop(connection_id, None)
        self._last_errors.pop(connection_id, None)
