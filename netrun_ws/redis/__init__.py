"""Several nodes as one service: the Redis store (sessions, presence, per-user limits, delivery).

Needs the ``redis`` extra. :class:`netrun_ws.redis.store.RedisStore` is what the ``redis`` store
plugin builds; the other modules are its parts (the pub/sub broker, the presence scripts, the
retry/timeout wrapper around every Redis call).
"""

from __future__ import annotations

__all__: list[str] = []
