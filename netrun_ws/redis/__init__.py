"""Several nodes as one service: the Redis store (sessions, presence, per-user limits, delivery).

Needs the ``redis`` extra. :class:`RedisStore` is what the ``redis`` store plugin builds; the
modules inside are its parts (the pub/sub broker, the presence scripts, the retry/timeout wrapper
around every Redis call) and internals.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netrun_ws.redis.store import DEFAULT_RECONNECT, RedisStore, RedisStoreError

__all__ = ["DEFAULT_RECONNECT", "RedisStore", "RedisStoreError"]


def __getattr__(name: str) -> object:
    # Imported on first use: the package imports without redis-py, so a plugin can check for the
    # extra (netrun_ws.extras.require_extra) before it needs these.
    if name in __all__:
        return getattr(importlib.import_module("netrun_ws.redis.store"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
