"""Shared fixtures. Helpers live in tests/support/ so test modules import them explicitly."""

from __future__ import annotations

from tests.support.redis_server import redis_server, shared_redis  # noqa: F401  (pytest fixtures)
