"""Several nodes as one service: the Redis store (sessions, presence, per-user limits, delivery).

Needs the ``redis`` extra. :class:`RedisStore` is what the ``redis`` store plugin builds; the
modules inside are its parts (the pub/sub broker, the presence scripts, the retry/timeout wrapper
around every Redis call) and internals.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Without redis-py: the plugin's options check the setting anywhere.
from netrun_ws.redis.layout import DEFAULT_BUS_GROUPS, MAX_BUS_GROUPS

if TYPE_CHECKING:
    from netrun_ws.redis.store import DEFAULT_RECONNECT, RedisStore, RedisStoreError

__all__ = [
    "DEFAULT_BUS_GROUPS",
    "DEFAULT_RECONNECT",
    "MAX_BUS_GROUPS",
    "RedisStore",
    "RedisStoreError",
]
_LAZY = ("DEFAULT_RECONNECT", "RedisStore", "RedisStoreError")


def __getattr__(name: str) -> object:
    # Imported on first use: the package imports without redis-py, so a plugin can check for the
    # extra (netrun_ws.extras.require_extra) before it needs these.
    if name in _LAZY:
        return getattr(importlib.import_module("netrun_ws.redis.store"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
