"""Expiring credentials: a connection closes with 1008 when its token expires, unless refreshed."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from netrun_ws.codes import CloseCode
from netrun_ws.timers import timers_for

if TYPE_CHECKING:
    from netrun_ws.connection import Connection
    from netrun_ws.connection_manager import WebSocketConnectionManager

__all__ = ["Expiry"]


class Expiry:
    """One timer per connection with an expiry, kept in ``connection.metadata["expiry"]`` (a
    :class:`netrun_ws.timers.Timer`)."""

    def __init__(self, manager: WebSocketConnectionManager) -> None:
        self._manager = manager
        self._closing: set[asyncio.Future[None]] = set()
        # Bound once: a bound method made per schedule is 64 bytes kept by each timer.
        self._expire_connection = self._expire

    def schedule(self, connection: Connection, expires_at: float | None) -> None:
        """Close ``connection`` at ``expires_at`` (epoch seconds); None cancels any timer."""
        self.cancel(connection)
        if expires_at is None:
            return
        delay = max(0.0, expires_at - time.time())
        # One loop timer for every connection's expiry (netrun_ws.timers): a loop timer each
        # cost about 600 bytes per idle connection.
        timers = timers_for(asyncio.get_running_loop())
        expire = self._expire_connection
        connection.metadata["expiry"] = timers.call_later(delay, expire, connection)

    def cancel(self, connection: Connection) -> None:
        timer = connection.metadata.pop("expiry", None)
        if timer is not None:
            timer.cancel()

    def _expire(self, connection: Connection) -> None:
        closing = self._manager.disconnect(
            connection.connection_id, CloseCode.POLICY_VIOLATION, "token expired"
        )
        task = asyncio.ensure_future(closing)
        self._closing.add(task)  # keep a reference until it is done
        task.add_done_callback(self._closing.discard)
