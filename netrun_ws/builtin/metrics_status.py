"""metrics: status - a live status page at ``<path>`` (default ``/status``), its data at
``<path>/data``.

A sampler reads the node's counters once per ``interval`` and keeps ``window`` seconds of them in a
ring; the page (``status_page.html`` beside this module: no external asset, plain SVG charts)
polls ``<path>/data`` and redraws. Access: clients on a loopback address always; anyone else only
with ``server.api_key``, as ``Authorization: Bearer <key>`` or as the password of HTTP Basic auth
(so a browser prompts for it). Without an API key, the page is loopback-only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import importlib.metadata
import ipaddress
import time
from collections import Counter, deque
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

import netrun_ws
from netrun_ws import hookimpl
from netrun_ws.connection import Connection
from netrun_ws.host import Host

BUSIEST_ROOMS = 10


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    path: str = Field(
        "/status", pattern=r"^/", description="Path of the page; its data at <path>/data."
    )
    interval: float = Field(1.0, ge=0.1, le=60, description="Seconds between two samples.")
    window: float = Field(300.0, ge=10, le=3600, description="Seconds of history the charts show.")


@dataclass(slots=True)
class Sample:
    at: float
    connections: int
    messages_in: float  # per second over the last interval
    messages_out: float
    errors: float
    closes: dict[int, int]  # close code -> connections closed with it during the interval


class Plugin:
    def __init__(self) -> None:
        self.options = Options()
        self.host: Host | None = None
        self.samples: deque[Sample] = deque()
        self._errors = 0
        self._closes: Counter[int] = Counter()
        self._closed_in = 0  # frames of connections that closed: keeps the totals monotonic
        self._closed_out = 0
        self._last: tuple[float, int, int, int] | None = None
        self._task: asyncio.Task[None] | None = None

    @hookimpl
    def configure(self, host: Host, options: Options) -> None:
        self.host = host
        self.options = options
        self.samples = deque(maxlen=max(2, round(options.window / options.interval)))

    @hookimpl
    def register_routes(self) -> list[BaseRoute]:
        path = self.options.path.rstrip("/") or "/"
        data = f"{path.rstrip('/')}/data"
        return [Route(path, self._page, methods=["GET"]), Route(data, self._data, methods=["GET"])]

    @hookimpl
    async def startup(self) -> None:
        self._task = asyncio.create_task(self._sample_forever(), name="netrun-ws status sampler")

    @hookimpl
    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @hookimpl
    def on_invalid_message(self) -> None:
        self._errors += 1

    @hookimpl
    def on_error(self) -> None:
        self._errors += 1

    @hookimpl
    def on_disconnect(self, connection: Connection, code: int) -> None:
        self._closes[code] += 1
        self._closed_in += connection.messages_received
        self._closed_out += connection.messages_sent

    # ------------------------------------------------------------------ sampling

    def sample(self) -> None:
        """Read the counters now and append one sample (rates since the previous reading)."""
        assert self.host is not None
        connections = self.host.stats().open_connections
        total_in = self._closed_in + sum(c.messages_received for c in connections)
        total_out = self._closed_out + sum(c.messages_sent for c in connections)
        now = time.monotonic()
        if self._last is not None:
            then, last_in, last_out, last_errors = self._last
            elapsed = max(now - then, 1e-6)
            self.samples.append(
                Sample(
                    at=time.time(),
                    connections=len(connections),
                    messages_in=(total_in - last_in) / elapsed,
                    messages_out=(total_out - last_out) / elapsed,
                    errors=(self._errors - last_errors) / elapsed,
                    closes=dict(self._closes),
                )
            )
            self._closes.clear()
        self._last = (now, total_in, total_out, self._errors)

    async def _sample_forever(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.options.interval)

    # ------------------------------------------------------------------ HTTP

    def _allowed(self, request: Request) -> bool:
        client = request.client.host if request.client else ""
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(client).is_loopback:
                return True
        assert self.host is not None
        key = self.host.config.server.api_key
        if key is None:
            return False
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        offered = credentials.strip()
        if scheme.lower() == "basic":
            try:
                offered = base64.b64decode(offered, validate=True).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return False
        elif scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(offered.encode(), key.get_secret_value().encode())

    def _refusal(self) -> Response:
        assert self.host is not None
        if self.host.config.server.api_key is None:
            body = {"error": "the status page is served to loopback clients only"}
            return JSONResponse(body, status_code=403)
        headers = {"WWW-Authenticate": 'Basic realm="netrun-ws status", charset="UTF-8"'}
        return JSONResponse({"error": "API key required"}, status_code=401, headers=headers)

    async def _page(self, request: Request) -> Response:
        if not self._allowed(request):
            return self._refusal()
        page = resources.files(__package__ or "netrun_ws.builtin").joinpath("status_page.html")
        headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY"}
        return HTMLResponse(page.read_text(encoding="utf-8"), headers=headers)

    async def _data(self, request: Request) -> Response:
        if not self._allowed(request):
            return self._refusal()
        return JSONResponse(await self.snapshot(), headers={"Cache-Control": "no-store"})

    async def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, as JSON."""
        host = self.host
        assert host is not None
        closes: Counter[int] = Counter()
        for sample in self.samples:
            closes.update(sample.closes)
        members: Counter[str] = Counter()
        for connection in host.stats().open_connections:
            members.update(host.rooms_of(connection))
        try:
            nodes = await asyncio.wait_for(host.store.nodes(), 2.0)
            nodes_error = None
        except Exception as exc:  # the store is down: the page says so instead of failing
            nodes, nodes_error = [], f"{type(exc).__name__}: {exc}"[:200]
        return {
            "node_id": host.store.node_id,
            "now": time.time(),
            "interval": self.options.interval,
            "window": self.options.window,
            "series": {
                "t": [s.at for s in self.samples],
                "connections": [s.connections for s in self.samples],
                "messages_in": [round(s.messages_in, 2) for s in self.samples],
                "messages_out": [round(s.messages_out, 2) for s in self.samples],
                "errors": [round(s.errors, 2) for s in self.samples],
            },
            "close_codes": {str(code): count for code, count in sorted(closes.items())},
            "nodes": nodes,
            "nodes_error": nodes_error,
            "rooms": [
                {"room": room, "members": count}
                for room, count in members.most_common(BUSIEST_ROOMS)
            ],
            "plugins": self._plugins(host),
            "config": host.loaded.masked(),
        }

    @staticmethod
    def _plugins(host: Host) -> list[dict[str, str]]:
        rows = []
        for slot, name in host.slots.items():
            plugin = host.plugins[name]
            rows.append(
                {
                    "slot": slot,
                    "plugin": plugin.name,
                    "origin": str(plugin.origin),
                    "version": _version(plugin.module),
                }
            )
        return rows


def _version(module: Any) -> str:
    """The version of the distribution a plugin module belongs to, or "-" when unknown."""
    top = getattr(module, "__name__", "").split(".")[0]
    if top == "netrun_ws":  # built-ins (also from a source checkout, which has no metadata)
        return netrun_ws.__version__
    if not top:
        return "-"
    for distribution in importlib.metadata.packages_distributions().get(top, []):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(distribution)
    return str(getattr(module, "__version__", "-"))
