"""The soak scenario's probe: ``GET /soak/stats`` answers the server's asyncio task count and its
open connections, so bench/soak.py can sample them beside RSS and file descriptors."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from netrun_ws import hookimpl
from netrun_ws.host import Host


class Plugin:
    def __init__(self) -> None:
        self.host: Host | None = None

    @hookimpl
    def configure(self, host: Host) -> None:
        self.host = host

    @hookimpl
    def register_routes(self) -> list[BaseRoute]:
        return [Route("/soak/stats", self._stats, methods=["GET"])]

    async def _stats(self, request: Request) -> JSONResponse:
        connections = len(self.host.manager) if self.host is not None else 0
        return JSONResponse({"tasks": len(asyncio.all_tasks()), "connections": connections})
