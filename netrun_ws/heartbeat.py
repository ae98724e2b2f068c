"""Heartbeat monitoring: ping every connection each interval and clean up the ones that went quiet.

Rules of one pass (``check_once``; the background loop runs one every ``interval`` seconds):

* a connection not heard from (``update_heartbeat``) for more than ``timeout`` seconds, or that
  has now missed ``max_missed`` consecutive intervals, is stale: it is unregistered and
  ``cleanup_callback(connection_id)`` is called;
* otherwise, if it was not heard from since the previous pass (it did not answer that pass's
  ping), its miss count grows and ``miss_callback(connection_id, missed_count)`` is called;
* then ``ping_callback(connection_id)`` is called for every connection still registered.

Callbacks may be sync or async, and get only the arguments they declare (a one-parameter
``miss_callback`` gets the connection id alone: :mod:`netrun_ws.callbacks`). A callback that
raises, or an async one that takes longer than ``interval``, is logged and counted in
``callback_errors``; the pass goes on with the other connections and the loop keeps running.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from netrun_ws.callbacks import fit_arguments

__all__ = ["HeartbeatConfig", "HeartbeatMonitor"]

logger = logging.getLogger(__name__)

#: Connections handled per pass before yielding to the event loop.
_YIELD_EVERY = 500

#: ``ping_callback(connection_id)`` / ``cleanup_callback(connection_id)``; sync or async.
ConnectionCallback = Callable[[str], object]
#: ``miss_callback(connection_id, missed_count)``, or ``miss_callback(connection_id)`` if it
#: declares one parameter (:mod:`netrun_ws.callbacks`); sync or async.
MissCallback = Callable[..., object]


def _positive(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not 0 < value < math.inf:  # also rejects NaN
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


@dataclass(frozen=True, slots=True)
class HeartbeatConfig:
    """Seconds between pings, seconds of silence before a connection is stale, misses allowed.

    ``enabled=False`` (netrun-websocket's switch) makes ``HeartbeatMonitor.start`` do nothing.
    """

    interval: float = 30
    timeout: float = 90
    max_missed: int = 3
    enabled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"enabled must be true or false, got {self.enabled!r}")
        _positive(self.interval, "interval")
        _positive(self.timeout, "timeout")
        if isinstance(self.max_missed, bool) or not isinstance(self.max_missed, int):
            raise ValueError(f"max_missed must be a positive integer, got {self.max_missed!r}")
        _positive(self.max_missed, "max_missed")
        if self.timeout < self.interval:
            raise ValueError(
                f"timeout ({self.timeout}) must be >= interval ({self.interval}): "
                "a connection must get at least one ping before it can time out"
            )


class _Beat:
    """Per-connection state, kept to two slots because idle connections can number 100k+."""

    __slots__ = ("last_seen", "missed")

    def __init__(self, last_seen: float) -> None:
        self.last_seen = last_seen
        self.missed = 0


class HeartbeatMonitor:
    """Track when each connection was last heard from and ping/clean them up on a schedule.

    ``clock`` (default ``time.monotonic``) and ``sleep`` (default ``asyncio.sleep``, what the
    background loop waits ``interval`` with) are injectable so tests can move time by hand.
    ``activity(connection_id)``, if given, returns when the connection was last heard from (on
    ``clock``'s scale, or None); each pass takes it into account as if ``update_heartbeat`` had
    been called then.
    """

    def __init__(
        self,
        config: HeartbeatConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        activity: Callable[[str], float | None] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.config = config if config is not None else HeartbeatConfig()
        self._clock = clock
        self._sleep = sleep
        # Reads when a connection was last heard from (on ``clock``'s scale) at check time, for
        # callers that track activity already: then nobody calls update_heartbeat per message.
        self._activity = activity
        self._beats: dict[str, _Beat] = {}
        self._last_pass: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._ping: ConnectionCallback | None = None
        self._cleanup: ConnectionCallback | None = None
        self._on_miss: MissCallback | None = None
        self._passes = 0
        self._pings = 0
        self._misses = 0
        self._cleanups = 0
        self._callback_errors = 0

    # -- registry -----------------------------------------------------------------------------

    def register_connection(self, connection_id: str) -> None:
        """Start monitoring ``connection_id`` as heard from now (re-registering resets it)."""
        self._beats[connection_id] = _Beat(self._clock())

    def unregister_connection(self, connection_id: str) -> None:
        """Stop monitoring ``connection_id``; unknown ids are ignored."""
        self._beats.pop(connection_id, None)

    def update_heartbeat(self, connection_id: str) -> bool:
        """Record that ``connection_id`` was heard from now (e.g. on pong).

        Returns False, changing nothing, for an unregistered id: a late pong must not bring
        back a connection that was already cleaned up.
        """
        beat = self._beats.get(connection_id)
        if beat is None:
            return False
        beat.last_seen = self._clock()
        beat.missed = 0
        return True

    def is_stale(self, connection_id: str) -> bool:
        """True if the connection is past ``timeout`` or ``max_missed``, or is not registered."""
        beat = self._beats.get(connection_id)
        if beat is None:
            return True
        return self._is_stale(beat, self._clock())

    def _is_stale(self, beat: _Beat, now: float) -> bool:
        return now - beat.last_seen > self.config.timeout or beat.missed >= self.config.max_missed

    def get_last_heartbeat(self, connection_id: str) -> float | None:
        """When ``connection_id`` was last heard from, on ``clock``'s scale; None if unknown."""
        beat = self._beats.get(connection_id)
        return None if beat is None else beat.last_seen

    def get_missed_count(self, connection_id: str) -> int:
        """Consecutive passes ``connection_id`` did not answer; 0 if it is not registered."""
        beat = self._beats.get(connection_id)
        return 0 if beat is None else beat.missed

    def get_stale_connections(self) -> list[str]:
        """Registered connections that are stale now (the next pass will clean them up)."""
        now = self._clock()
        return [cid for cid, beat in self._beats.items() if self._is_stale(beat, now)]

    # -- loop -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the background loop task is alive."""
        return self._task is not None and not self._task.done()

    async def start(
        self,
        ping_callback: ConnectionCallback,
        cleanup_callback: ConnectionCallback,
        miss_callback: MissCallback | None = None,
    ) -> None:
        """Start the background loop (first pass after one ``interval``) and return.

        Does nothing when ``config.enabled`` is False. Raises RuntimeError if it is already
        running; call ``stop()`` first to restart.
        """
        if not self.config.enabled:
            return
        if self.running:
            raise RuntimeError("HeartbeatMonitor is already running; stop() it first")
        self._ping = fit_arguments(ping_callback, 1)
        self._cleanup = fit_arguments(cleanup_callback, 1)
        self._on_miss = None if miss_callback is None else fit_arguments(miss_callback, 2)
        self._task = asyncio.create_task(self._run(), name="netrun-ws-heartbeat")

    async def stop(self) -> None:
        """Stop the background loop and wait for it to end; safe to call when not running."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        # asyncio.wait does not re-raise the loop's CancelledError, but still lets our own
        # caller's cancellation through.
        await asyncio.wait({task})

    async def _run(self) -> None:
        while True:
            await self._sleep(self.config.interval)
            try:
                await self.check_once()
            except Exception:
                logger.exception("heartbeat pass failed; the loop keeps running")

    async def check_once(self) -> None:
        """Run one pass of the rules above with the callbacks given to ``start`` (if any)."""
        now = self._clock()
        previous_pass, self._last_pass = self._last_pass, now
        self._passes += 1
        # Snapshot: callbacks may register/unregister connections while we iterate.
        for index, (connection_id, beat) in enumerate(list(self._beats.items()), 1):
            if index % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a pass over 100k connections must not freeze the loop
            if self._beats.get(connection_id) is not beat:
                continue  # removed or re-registered by a callback during this pass
            if self._activity is not None:
                seen = self._activity(connection_id)
                if seen is not None and seen > beat.last_seen:
                    beat.last_seen = seen
                    beat.missed = 0
            if previous_pass is not None and beat.last_seen < previous_pass:
                beat.missed += 1
            if self._is_stale(beat, now):
                del self._beats[connection_id]
                self._cleanups += 1
                await self._invoke(self._cleanup, "cleanup", connection_id)
                continue
            if beat.missed:
                self._misses += 1
                await self._invoke(self._on_miss, "miss", connection_id, beat.missed)
            self._pings += 1
            await self._invoke(self._ping, "ping", connection_id)

    async def _invoke(
        self, callback: Callable[..., object] | None, kind: str, connection_id: str, *extra: int
    ) -> None:
        if callback is None:
            return
        try:
            result = callback(connection_id, *extra)
            if inspect.isawaitable(result):
                # One hung callback must not stall the heartbeat of every other connection.
                async with asyncio.timeout(self.config.interval):  # no extra task per call
                    await result
        except Exception:
            self._callback_errors += 1
            logger.exception("heartbeat %s callback failed for %s", kind, connection_id)

    # -- stats ----------------------------------------------------------------------------------

    def get_stats(self) -> dict[str, Any]:
        """Counts and settings: connections (total/stale/healthy), passes, pings, misses, ..."""
        stale = len(self.get_stale_connections())
        return {
            "total_connections": len(self._beats),
            "stale_connections": stale,
            "healthy_connections": len(self._beats) - stale,
            "running": self.running,
            "interval": self.config.interval,
            "timeout": self.config.timeout,
            "max_missed": self.config.max_missed,
            "checks": self._passes,
            "pings_sent": self._pings,
            "misses": self._misses,
            "cleanups": self._cleanups,
            "callback_errors": self._callback_errors,
        }
