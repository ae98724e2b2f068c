"""Reconnection with exponential backoff (netrun-websocket's ``ReconnectionManager``).

The delay before attempt ``n`` (1-based) is ``initial_delay * backoff_multiplier ** (n - 1)``,
capped at ``max_delay``. With ``jitter`` the delay is drawn uniformly from ``[delay / 2, delay]``,
so a crowd of clients dropped together (e.g. by a server restart) spreads out, while each still
waits at least half the backoff and never more than ``max_delay``.

The server sends the same policy to its clients (``ReconnectionConfig.to_client_policy``), so
browser clients back off exactly as Python clients using ``ReconnectionManager`` do.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random as _random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from netrun_ws.callbacks import fit_arguments

__all__ = ["ReconnectionConfig", "ReconnectionManager"]

logger = logging.getLogger(__name__)


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class ReconnectionConfig:
    """Backoff settings; ``max_attempts=0`` means retry forever."""

    initial_delay: float = 1.0
    max_delay: float = 60.0
    max_attempts: int = 10
    backoff_multiplier: float = 2.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if _number(self.initial_delay, "initial_delay") < 0:
            raise ValueError(f"initial_delay must be >= 0, got {self.initial_delay!r}")
        if _number(self.max_delay, "max_delay") < 0:
            raise ValueError(f"max_delay must be >= 0, got {self.max_delay!r}")
        if self.max_delay < self.initial_delay:
            raise ValueError(
                f"max_delay ({self.max_delay}) must be >= initial_delay ({self.initial_delay})"
            )
        if _number(self.backoff_multiplier, "backoff_multiplier") < 1:
            raise ValueError(f"backoff_multiplier must be >= 1, got {self.backoff_multiplier!r}")
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ValueError(f"max_attempts must be an integer, got {self.max_attempts!r}")
        if self.max_attempts < 0:
            raise ValueError(f"max_attempts must be >= 0 (0 = unlimited), got {self.max_attempts}")
        if not isinstance(self.jitter, bool):
            raise ValueError(f"jitter must be true or false, got {self.jitter!r}")

    def base_delay(self, attempt: int) -> float:
        """Delay before ``attempt`` without jitter (attempt 0 and 1 both give initial_delay)."""
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
            raise ValueError(f"attempt must be an integer >= 0, got {attempt!r}")
        try:
            delay = self.initial_delay * self.backoff_multiplier ** max(attempt - 1, 0)
        except OverflowError:
            return self.max_delay
        return min(delay, self.max_delay)

    def to_client_policy(self) -> dict[str, Any]:
        """The JSON-able policy a server puts in its welcome message for clients to follow.

        ``jitter: "equal"`` means: wait a uniform random time in ``[delay / 2, delay]``;
        ``"none"`` means wait exactly ``delay``. Delays are in seconds.
        """
        return {
            "strategy": "exponential",
            "initial_delay": self.initial_delay,
            "max_delay": self.max_delay,
            "max_attempts": self.max_attempts,
            "backoff_multiplier": self.backoff_multiplier,
            "jitter": "equal" if self.jitter else "none",
        }


class ReconnectionManager:
    """Retry ``connect_callback`` with backoff until it succeeds, attempts run out, or ``stop()``.

    ``sleep`` (default ``asyncio.sleep``) and ``random`` (default ``random.random``, in [0, 1))
    are injectable so the schedule can be tested without waiting.
    """

    def __init__(
        self,
        config: ReconnectionConfig | None = None,
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.config = config if config is not None else ReconnectionConfig()
        self._sleep = sleep
        self._random = random
        self._stop = asyncio.Event()
        self.attempts = 0  # in the current (or last) reconnect() run
        self.is_reconnecting = False
        self.total_attempts = 0
        self.successful_reconnections = 0
        self.failed_attempts = 0
        self.exhausted = 0  # runs that hit max_attempts
        self.last_delay: float | None = None
        self.last_error: str | None = None

    def calculate_delay(self, attempt: int | None = None) -> float:
        """Seconds to wait before ``attempt`` (1-based), jittered if the config says so.

        Without ``attempt``, the current one (``attempts``), as netrun-websocket did.
        """
        delay = self.config.base_delay(self.attempts if attempt is None else attempt)
        if self.config.jitter:
            delay = delay * (0.5 + 0.5 * self._random())
        return delay

    async def reconnect(
        self,
        connect_callback: Callable[[], object],
        on_success: Callable[[], object] | None = None,
        on_failure: Callable[..., object] | None = None,
        on_max_attempts: Callable[[], object] | None = None,
    ) -> bool:
        """Wait, try ``connect_callback``, repeat; True once it returns a truthy value.

        Each attempt first waits ``calculate_delay(attempt)``. An attempt fails when the
        callback raises (``on_failure(attempt, exception)``) or returns a falsy value
        (``on_failure(attempt, ConnectionError(...))``); an ``on_failure`` declaring one
        parameter, as in netrun-websocket's README, is called with the attempt only
        (:mod:`netrun_ws.callbacks`). After ``max_attempts`` failures
        ``on_max_attempts()`` is called and False returned; after ``stop()`` False is
        returned with no further callback. Callbacks may be sync or async; an exception from
        ``on_success``/``on_failure``/``on_max_attempts`` is logged and does not change the
        outcome. Raises RuntimeError if a reconnect is already running on this manager.
        """
        if self.is_reconnecting:
            raise RuntimeError("a reconnect() is already running on this ReconnectionManager")
        self.is_reconnecting = True
        self._stop.clear()
        self.attempts = 0
        if on_failure is not None:
            on_failure = fit_arguments(on_failure, 2)
        try:
            return await self._run(connect_callback, on_success, on_failure, on_max_attempts)
        finally:
            self.is_reconnecting = False

    async def _run(
        self,
        connect_callback: Callable[[], object],
        on_success: Callable[[], object] | None,
        on_failure: Callable[..., object] | None,
        on_max_attempts: Callable[[], object] | None,
    ) -> bool:
        limit = self.config.max_attempts
        while limit == 0 or self.attempts < limit:
            attempt = self.attempts + 1
            delay = self.calculate_delay(attempt)
            self.last_delay = delay
            if not await self._wait(delay):
                return False  # stopped
            self.attempts = attempt
            self.total_attempts += 1
            error = await self._attempt(connect_callback)
            if error is None:
                self.successful_reconnections += 1
                self.last_error = None
                await self._notify(on_success, "on_success")
                return True
            self.failed_attempts += 1
            self.last_error = f"{type(error).__name__}: {error}"
            await self._notify(on_failure, "on_failure", attempt, error)
            if self._stop.is_set():
                return False
        self.exhausted += 1
        await self._notify(on_max_attempts, "on_max_attempts")
        return False

    async def _wait(self, delay: float) -> bool:
        """Sleep ``delay`` unless ``stop()`` comes first; True if we should go on."""
        if self._stop.is_set():
            return False
        sleeper = asyncio.ensure_future(self._sleep(delay))
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (sleeper, stopper):
                waiter.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)
        return not self._stop.is_set()

    @staticmethod
    async def _attempt(connect_callback: Callable[[], object]) -> BaseException | None:
        try:
            result = connect_callback()
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            return exc
        if not result:
            return ConnectionError(f"connect_callback returned {result!r}")
        return None

    @staticmethod
    async def _notify(callback: Callable[..., object] | None, name: str, *args: Any) -> None:
        if callback is None:
            return
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("reconnection %s callback failed", name)

    def stop(self) -> None:
        """Make a running ``reconnect()`` return False promptly (it interrupts the wait)."""
        self._stop.set()

    def reset(self) -> None:
        """Forget the current run: attempts back to 0, no last delay/error, not stopped."""
        self.attempts = 0
        self.last_delay = None
        self.last_error = None
        self._stop.clear()

    def get_stats(self) -> dict[str, Any]:
        """Attempts in the current run, lifetime totals, last delay/error and the policy."""
        return {
            "attempts": self.attempts,
            "is_reconnecting": self.is_reconnecting,
            "stopped": self._stop.is_set(),
            "total_attempts": self.total_attempts,
            "successful_reconnections": self.successful_reconnections,
            "failed_attempts": self.failed_attempts,
            "exhausted": self.exhausted,
            "last_delay": self.last_delay,
            "last_error": self.last_error,
            "max_attempts": self.config.max_attempts,
            "policy": self.config.to_client_policy(),
        }
