"""heartbeat: ping - the server sends ``{"type": "ping"}`` every ``interval`` seconds; clients
answer ``{"type": "pong"}``. Any frame from the client counts as a sign of life.

A connection silent for ``timeout`` seconds, or that misses ``max_missed`` consecutive intervals,
is stale: ``on_stale`` fires and it is closed with 4100 (heartbeat timeout). Clients may also send
``{"type": "ping"}`` and get ``{"type": "pong"}`` back. Driven by HeartbeatMonitor.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from netrun_ws import handles, hookimpl
from netrun_ws.codes import CloseCode
from netrun_ws.connection import Connection
from netrun_ws.heartbeat import HeartbeatConfig, HeartbeatMonitor
from netrun_ws.host import Host


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    interval: float = Field(30.0, gt=0, description="Seconds between server pings.")
    timeout: float = Field(90.0, gt=0, description="Silence after which a connection is stale.")
    max_missed: int = Field(3, gt=0, description="Consecutive missed intervals that make it stale.")

    @model_validator(mode="after")
    def _timeout_covers_an_interval(self) -> Options:
        if self.timeout < self.interval:
            raise ValueError("timeout must be >= interval")
        return self


_PING = '{"type":"ping"}'
_PONG = '{"type":"pong"}'


class Plugin:
    def __init__(self) -> None:
        self.options = Options()
        self.monitor = HeartbeatMonitor(HeartbeatConfig())
        self.host: Host | None = None

    @hookimpl
    def configure(self, host: Host, options: Options) -> None:
        self.host = host
        self.options = options
        # The host stamps connection.last_activity (wall clock) on every frame it receives; the
        # monitor reads it at each pass, so no hook runs per message.
        self.monitor = HeartbeatMonitor(
            HeartbeatConfig(
                interval=options.interval, timeout=options.timeout, max_missed=options.max_missed
            ),
            clock=time.time,
            activity=self._last_activity,
        )

    @hookimpl
    async def startup(self) -> None:
        await self.monitor.start(
            ping_callback=self._ping, cleanup_callback=self._stale, miss_callback=self._missed
        )

    @hookimpl
    async def shutdown(self) -> None:
        await self.monitor.stop()

    @hookimpl
    def on_connect(self, connection: Connection) -> None:
        self.monitor.register_connection(connection.connection_id)

    @hookimpl
    def welcome_payload(self) -> dict[str, Any]:
        options = self.options
        return {
            "heartbeat": {
                "interval": options.interval,
                "timeout": options.timeout,
                "max_missed": options.max_missed,
            }
        }

    @hookimpl
    @handles("ping", optional=True)  # no other message reaches it; no "ping" registered, none
    def on_message(self) -> str:
        return _PONG

    @hookimpl
    def on_disconnect(self, connection: Connection) -> None:
        self.monitor.unregister_connection(connection.connection_id)

    def _last_activity(self, connection_id: str) -> float | None:
        connection = self.host.connection(connection_id) if self.host is not None else None
        return connection.last_activity if connection is not None else None

    async def _ping(self, connection_id: str) -> None:
        if self.host is not None:
            await self.host.send(connection_id, _PING)

    async def _missed(self, connection_id: str, missed: int) -> None:
        host = self.host
        connection = host.connection(connection_id) if host else None
        if host is not None and connection is not None:
            await host.fire.on_heartbeat_missed(connection, missed)

    async def _stale(self, connection_id: str) -> None:
        host = self.host
        connection = host.connection(connection_id) if host else None
        if host is None or connection is None:
            return
        await host.fire.on_stale(connection)
        await host.disconnect(connection, CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout")
