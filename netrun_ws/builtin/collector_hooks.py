"""The hooks that feed a MetricsCollector, shared by the ``log`` and ``json`` metrics sinks."""

from __future__ import annotations

from typing import Any

from netrun_ws import hookimpl
from netrun_ws.connection import Connection
from netrun_ws.metrics import MetricsCollector


class CollectorHooks:
    """Records connections, frames, sends and invalid messages into ``self.collector``."""

    def __init__(self) -> None:
        self.collector = MetricsCollector()

    @hookimpl
    def on_connect(self, connection: Connection) -> None:
        self.collector.register_connection(connection.connection_id, connection.user_id)

    @hookimpl
    def on_message_received(self, connection: Connection, raw: str | bytes) -> None:
        self.collector.record_message_received(connection.connection_id, len(raw))

    @hookimpl
    def after_send(self, connection: Connection, message: Any) -> None:
        # The hook carries the message, not its encoding: sizes are known for str/bytes only.
        size = len(message) if isinstance(message, (str, bytes)) else 0
        self.collector.record_message_sent(connection.connection_id, size)

    @hookimpl
    def on_invalid_message(self, connection: Connection) -> None:
        self.collector.record_error(connection.connection_id)

    @hookimpl
    def on_disconnect(self, connection: Connection, code: int, reason: str) -> None:
        self.collector.unregister_connection(connection.connection_id)
