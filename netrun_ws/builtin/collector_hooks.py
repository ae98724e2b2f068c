"""The hooks that feed a MetricsCollector, shared by the ``log`` and ``json`` metrics sinks.

Traffic is not recorded per message: every connection counts its own frames and bytes, and
:meth:`CollectorHooks.sync` copies those counters into the collector when it is read (and once more
at disconnect), so the per-message path calls no metrics hook at all.
"""

from __future__ import annotations

from netrun_ws import hookimpl
from netrun_ws.connection import Connection
from netrun_ws.host import Host
from netrun_ws.metrics import MetricsCollector
from netrun_ws.stats import HostStats


class CollectorHooks:
    """Records connections and invalid messages into ``self.collector`` (and authentication
    refusals into ``self.auth_refused``); traffic on :meth:`sync`."""

    def __init__(self) -> None:
        self.collector = MetricsCollector()
        self.host: Host | None = None
        #: Clients refused by authentication, by HTTP status or close code (as a str).
        self.auth_refused: dict[str, int] = {}

    def sync(self) -> HostStats | None:
        """Bring the collector's traffic counters up to date with the open connections; returns
        the host's stats it read them from (None before ``configure``)."""
        if self.host is None:
            return None
        stats = self.host.stats()
        for connection in stats.open_connections:
            self._sync_one(connection)
        return stats

    def _sync_one(self, connection: Connection) -> None:
        self.collector.update_connection_counters(
            connection.connection_id,
            messages_sent=connection.messages_sent,
            messages_received=connection.messages_received,
            bytes_sent=connection.bytes_sent,
            bytes_received=connection.bytes_received,
            last_activity=connection.last_activity,
        )

    @hookimpl
    def on_connect(self, connection: Connection) -> None:
        self.collector.register_connection(connection.connection_id, connection.user_id)

    @hookimpl
    def on_auth_refused(self, status: int) -> None:
        key = str(status)
        self.auth_refused[key] = self.auth_refused.get(key, 0) + 1

    @hookimpl
    def on_invalid_message(self, connection: Connection) -> None:
        self.collector.record_error(connection.connection_id)

    @hookimpl
    def on_disconnect(self, connection: Connection, code: int, reason: str) -> None:
        self._sync_one(connection)
        self.collector.discard_connection(connection.connection_id)
