"""The hooks behind the ``log`` and ``json`` metrics sinks' figures, shared by both.

Nothing is kept per connection: the host counts its connections, their frames and bytes already
(:func:`netrun_ws.stats.collect_stats`, closed connections included), so :meth:`CollectorHooks.read`
takes those figures when a sink reads them, and a :class:`~netrun_ws.metrics.MetricsCollector`
counts only what the host does not (errors, latency samples, uptime). The per-message path calls
no metrics hook at all, and an idle connection costs the sinks nothing.
"""

from __future__ import annotations

from typing import Any

from netrun_ws import hookimpl
from netrun_ws.connection import Connection
from netrun_ws.host import Host
from netrun_ws.metrics import MetricsCollector
from netrun_ws.stats import HostStats


class CollectorHooks:
    """Counts errors into ``self.collector``, authentication refusals into
    ``self.auth_refused`` and the peak of open connections; :meth:`read` adds the host's
    figures."""

    def __init__(self) -> None:
        self.collector = MetricsCollector()
        self.host: Host | None = None
        #: Clients refused by authentication, by HTTP status or close code (as a str).
        self.auth_refused: dict[str, int] = {}
        self._peak = 0

    def read(self) -> tuple[dict[str, Any], HostStats | None]:
        """The summary (``MetricsCollector.get_stats()``'s keys, the connection and traffic
        figures the host's) and the host's stats it was read from (None before
        ``configure``)."""
        summary = self.collector.get_stats()
        if self.host is None:
            return summary, None
        stats = self.host.stats()
        counts = stats.connections
        summary.update(
            active_connections=counts.total_connections,
            peak_connections=max(self._peak, counts.total_connections),
            total_connections=counts.total_connects,
            unique_users=counts.total_users,
            messages_sent=counts.messages_sent,
            messages_received=counts.messages_received,
            total_messages=counts.messages_sent + counts.messages_received,
            bytes_sent=counts.bytes_sent,
            bytes_received=counts.bytes_received,
            total_bytes=counts.bytes_sent + counts.bytes_received,
        )
        return summary, stats

    @hookimpl
    def on_connect(self, connection: Connection) -> None:
        if self.host is not None:
            self._peak = max(self._peak, len(self.host.manager))

    @hookimpl
    def on_auth_refused(self, status: int) -> None:
        key = str(status)
        self.auth_refused[key] = self.auth_refused.get(key, 0) + 1

    @hookimpl
    def on_invalid_message(self, connection: Connection) -> None:
        self.collector.record_error(connection.connection_id)
