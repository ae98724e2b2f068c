"""Calls to Redis by the Redis store: bounded in time, failing with one error type, reported once.

Every command the store sends goes through :func:`bounded`, so no call waits longer than the
store's ``operation_timeout`` and every Redis failure (refused, reset, timed out, paused server)
surfaces as :class:`RedisStoreError`, whose message names Redis by its masked URL.
:class:`OutageLog` turns a stream of failures into one warning when an outage starts and one
line when it ends, so a Redis outage does not flood the log with one line per message.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from netrun_ws._masking import mask_url, scrub_password
from netrun_ws.session_backends import SessionStoreError

__all__ = [
    "REDIS_FAILURES",
    "Abandoned",
    "AnyRedis",
    "OutageLog",
    "RedisStoreError",
    "RedisTarget",
    "bounded",
    "describe_failure",
    "finish_within",
]

T = TypeVar("T")

#: The store's command client: one Redis, or a Redis Cluster (``cluster: true``).
AnyRedis = Redis | RedisCluster

#: What a Redis call raises when the server or the network fails.
REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)


class RedisStoreError(SessionStoreError):
    """Redis failed or did not answer in time; the message names the URL, password masked.

    A :class:`~netrun_ws.session_backends.SessionStoreError` (so a ``ConnectionError``): callers
    that already handle session-store failures handle this one too.
    """


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """The Redis a store talks to: its URL (secret) and how to name it in messages (masked)."""

    url: str
    #: Bounds the calls in flight (Redis Cluster: its client fails a call when a node's pool is
    #: full instead of waiting, so calls wait here, within their timeout, for a free slot).
    gate: asyncio.Semaphore | None = field(default=None, compare=False)

    @property
    def location(self) -> str:
        return mask_url(self.url)

    def scrub(self, text: str) -> str:
        """``text`` with the URL's password, if any, replaced by ``***``."""
        return scrub_password(self.url, text)

    def __repr__(self) -> str:
        return f"RedisTarget({self.location!r})"


def describe_failure(exc: BaseException) -> str:
    """``"TimeoutError"`` or ``"ConnectionError: Connection refused"``, one line, short."""
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


async def bounded(
    awaitable: Awaitable[T], *, timeout: float, operation: str, target: RedisTarget
) -> T:
    """Await a Redis call for at most ``timeout`` seconds; failures become RedisStoreError."""
    try:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for wraps every call in a task.
        async with asyncio.timeout(timeout):
            if target.gate is not None:
                return await _gated(awaitable, target.gate)
            return await awaitable
    except TimeoutError:
        raise RedisStoreError(
            f"Redis at {target.location} did not answer {operation} within {timeout:g}s"
        ) from None
    except (RedisError, OSError) as exc:
        cause = target.scrub(describe_failure(exc))
        raise RedisStoreError(
            f"Redis at {target.location} failed during {operation}: {cause}"
        ) from None


async def _gated(awaitable: Awaitable[T], gate: asyncio.Semaphore) -> T:
    started = False
    try:
        async with gate:
            started = True
            return await awaitable
    finally:
        if not started and inspect.iscoroutine(awaitable):
            awaitable.close()  # timed out waiting for the gate: the call is never made


@dataclass(frozen=True, slots=True)
class Abandoned:
    """A shutdown step that did not finish cleanly: what it was and why."""

    step: str
    why: str  # "no answer within 2s", or the failure described in one line


async def finish_within(
    step: str, awaitable: Awaitable[object], timeout: float
) -> Abandoned | None:
    """Run ``awaitable`` for at most ``timeout`` seconds, whatever it does when cancelled.

    None when it finished; else what was abandoned. A step still running at the deadline is
    cancelled and left behind, never awaited again: ``asyncio.wait_for`` would wait for the
    cancellation to complete, which is exactly what a hung connection may never do.
    """
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=max(timeout, 0.0))
    if not done:
        task.cancel()
        task.add_done_callback(_retrieve)
        return Abandoned(step, f"no answer within {timeout:.3g}s")
    if task.cancelled():
        return Abandoned(step, "cancelled")
    failure = task.exception()
    return None if failure is None else Abandoned(step, describe_failure(failure))


def _retrieve(task: asyncio.Future[object]) -> None:
    # An abandoned step's late failure is already reported as abandoned: keep asyncio quiet.
    if not task.cancelled():
        task.exception()


class OutageLog:
    """Logs the first failure of an outage as a warning and its end once, counting in between."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self._what = what
        self.since: float | None = None  # unix time of the first failure of the current outage
        self.failures_in_outage = 0

    @property
    def in_outage(self) -> bool:
        return self.since is not None

    def failed(self, reason: str, *, count: bool = True) -> None:
        """Note a failure; ``count=False`` for a retry that is not itself a lost operation."""
        if count:
            self.failures_in_outage += 1
        if self.since is None:
            self.since = time.time()
            self._logger.warning(
                "%s failing: %s (logged once until it recovers)", self._what, reason
            )

    def recovered(self) -> None:
        if self.since is None:
            return
        seconds = time.time() - self.since
        self._logger.info(
            "%s recovered after %.1fs (%d failure(s) meanwhile)",
            self._what,
            seconds,
            self.failures_in_outage,
        )
        self.since = None
        self.failures_in_outage = 0
