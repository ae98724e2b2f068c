"""metrics: json - ``GET <path>`` returns MetricsCollector and connection-manager stats as JSON."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from netrun_ws import hookimpl
from netrun_ws.connection import Connection
from netrun_ws.host import Host
from netrun_ws.metrics import MetricsCollector


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field("/metrics.json", pattern=r"^/", description="Path of the JSON endpoint.")


class Plugin:
    def __init__(self) -> None:
        self.collector = MetricsCollector()
        self.options = Options()
        self.host: Host | None = None

    @hookimpl
    def configure(self, host: Host, options: Options) -> None:
        self.host = host
        self.options = options

    @hookimpl
    def register_routes(self) -> list[BaseRoute]:
        return [Route(self.options.path, self._endpoint, methods=["GET"])]

    async def _endpoint(self, request: Request) -> JSONResponse:
        body: dict[str, Any] = {"metrics": self.collector.get_stats()}
        if self.host is not None:
            body["connections"] = self.host.manager.get_stats()
            if self.host.started:
                body["store"] = self.host.store.stats()
        return JSONResponse(body)

    @hookimpl
    def on_connect(self, connection: Connection) -> None:
        self.collector.register_connection(connection.connection_id, connection.user_id)

    @hookimpl
    def on_message_received(self, connection: Connection, raw: str | bytes) -> None:
        self.collector.record_message_received(connection.connection_id, len(raw))

    @hookimpl
    def after_send(self, connection: Connection, message: Any) -> None:
        size = len(message) if isinstance(message, (str, bytes)) else 0
        self.collector.record_message_sent(connection.connection_id, size)

    @hookimpl
    def on_invalid_message(self, connection: Connection) -> None:
        self.collector.record_error(connection.connection_id)

    @hookimpl
    def on_error(self, connection: Connection | None) -> None:
        if connection is not None:
            self.collector.record_error(connection.connection_id)

    @hookimpl
    def on_disconnect(self, connection: Connection) -> None:
        self.collector.unregister_connection(connection.connection_id)
