"""Waiting for an effect with a generous deadline, instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["eventually"]


async def eventually(
    check: Callable[[], Awaitable[Any]] | Callable[[], Any],
    *,
    timeout: float = 5.0,
    interval: float = 0.02,
    what: str = "condition",
) -> float:
    """Poll ``check`` (sync or async) until truthy; return the seconds it took.

    Fails the test after ``timeout`` seconds, naming ``what``.
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g}s")
        await asyncio.sleep(interval)
