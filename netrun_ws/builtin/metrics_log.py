"""metrics: log - connection events and a periodic summary to the ``netrun_ws.metrics`` logger.

Connects and disconnects are logged at ``level`` (user id, connection id, close code: never a
token); every ``interval`` seconds (0 = never) one line summarises the node's counters
(:class:`~netrun_ws.builtin.collector_hooks.CollectorHooks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from netrun_ws import hookimpl
from netrun_ws.builtin.collector_hooks import CollectorHooks
from netrun_ws.connection import Connection
from netrun_ws.host import Host

logger = logging.getLogger("netrun_ws.metrics")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    level: Literal["debug", "info", "warning"] = Field("info", description="Log level of events.")
    interval: float = Field(60.0, ge=0, description="Seconds between summaries (0 = never).")


class Plugin(CollectorHooks):
    def __init__(self) -> None:
        super().__init__()
        self.level = logging.INFO
        self.interval = 60.0
        self._task: asyncio.Task[None] | None = None

    @hookimpl
    def configure(self, host: Host, options: Options) -> None:
        self.host = host
        self.level = logging.getLevelName(options.level.upper())
        self.interval = options.interval

    @hookimpl
    def startup(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._summaries())

    @hookimpl
    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.log_summary()

    async def _summaries(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.log_summary()

    def log_summary(self) -> None:
        stats, _ = self.read()
        logger.log(
            self.level,
            "metrics: %s active connections, %s messages received, %s sent, %s errors",
            stats["active_connections"],
            stats["messages_received"],
            stats["messages_sent"],
            stats["errors"],
        )

    @hookimpl
    def on_connect(self, connection: Connection) -> None:
        super().on_connect(connection)
        logger.log(
            self.level,
            "connect user=%s connection=%s",
            connection.user_id,
            connection.connection_id,
        )

    @hookimpl
    def on_disconnect(self, connection: Connection, code: int, reason: str) -> None:
        logger.log(
            self.level,
            "disconnect user=%s connection=%s code=%s reason=%r",
            connection.user_id,
            connection.connection_id,
            code,
            reason,
        )
