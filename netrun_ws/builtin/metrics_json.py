"""metrics: json - ``GET <path>`` returns the node's metrics summary (MetricsCollector's keys)
and the connection manager's stats as JSON."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from netrun_ws import hookimpl
from netrun_ws.builtin.collector_hooks import CollectorHooks
from netrun_ws.connection import Connection
from netrun_ws.host import Host


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    path: str = Field("/metrics.json", pattern=r"^/", description="Path of the JSON endpoint.")


class Plugin(CollectorHooks):
    def __init__(self) -> None:
        super().__init__()
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
        summary, stats = self.read()
        body: dict[str, Any] = {
            "metrics": summary,
            "auth_refused": dict(self.auth_refused),
        }
        if stats is not None:
            body["connections"] = dataclasses.asdict(stats.connections)
            if stats.store is not None:
                body["store"] = dict(stats.store)
        return JSONResponse(body)

    @hookimpl
    def on_error(self, connection: Connection | None) -> None:
        if connection is not None:
            self.collector.record_error(connection.connection_id)
