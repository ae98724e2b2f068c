"""``WebSocketSessionManager``: connection sessions and their saved state, in memory or in Redis.

It keeps netrun-websocket's API (``initialize``, ``create_connection``, ``get_connection``,
``update_heartbeat``, ``save_connection_state``, ``restore_connection_state``, ``disconnect``,
``cleanup_stale_connections``, ``get_connection_stats``) with one behaviour for both backends:

- no ``redis_client``/``redis_url``: in memory, for one process (no Redis needed);
- ``redis_client`` (yours; never closed here) or ``redis_url`` (a client is created and closed by
  :meth:`~WebSocketSessionManager.close`): shared by every process using the same Redis and
  ``key_prefix``, so a state saved on one node is restored on another.

Saved state belongs to the SESSION: ``save_connection_state(connection_id, state)`` stores it
under the connection's session id, and ``restore_connection_state`` of any later connection
created with that session id returns it, until ``connection_ttl`` seconds pass without it being
saved again (``disconnect(save_state=True)`` restarts that window; ``save_state=False`` deletes it).

A session may be bound to the user who owns it: ``claim_session(session_id, user_id)`` binds
it (or restarts the binding's ``connection_ttl``) and returns False while another user holds it.
A bound session's state is saved and restored only for connections of its owner (a save by
anyone else returns False, a restore returns None); saving restarts the binding too. Sessions
nobody claimed behave as before. ``claim_and_create`` and ``save_and_disconnect`` are a
connection's calls at open (claim, create) and at close (claim, save, disconnect), each as one.

Timestamps (``connected_at``, ``last_heartbeat``) are seconds since the epoch from ``clock``.
Staleness uses ``clock``; entry expiry uses ``clock`` in memory and Redis's own TTLs in Redis.
Nodes sharing a Redis should therefore have synchronised clocks.

Failures: bad arguments raise ``ValueError`` naming the argument; Redis failing or not answering
within ``operation_timeout`` raises :class:`SessionStoreError` (a ``ConnectionError``) whose
message names the Redis URL with its password masked. The next call reconnects; no call waits
longer than ``operation_timeout``.

Redis key layout (``P`` is ``key_prefix``; every key has a TTL of ``connection_ttl``, restarted
on each write, so a dead process's entries expire on their own)::

    P:conn:<connection_id>   hash  user_id, session_id, data (the connection's JSON record)
    P:user:<user_id>         set   the user's connection ids (ids whose P:conn expired are
                                   dropped when read)
    P:heartbeats             zset  connection id -> last heartbeat (seconds, ``clock``); used by
                                   cleanup_stale_connections and the stats
    P:state:<session_id>     str   the session's saved state, JSON
    P:owner:<session_id>     str   the user id the session is bound to (``claim_session``)

A create is one MULTI/EXEC; a heartbeat, disconnect, save and restore are each one Lua script,
so concurrent calls never leave half-written entries. The scripts derive key names from the
prefix, so on Redis Cluster give a ``redis_client`` that is a ``redis.asyncio.RedisCluster`` and a
prefix wrapped in braces (``{netrun_ws}``, a hash tag): every key then lives on one slot.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import math
import re
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from netrun_ws.connection import uuid4_hex
from netrun_ws.session_backends import (
    ConnectionRecord,
    MemorySessionBackend,
    RedisSessionBackend,
    SessionBackend,
    SessionStoreError,
    StatePolicy,
    mask_url,
    new_connection_record,
)
from netrun_ws.session_records import SessionState, WebSocketConnection

if TYPE_CHECKING:
    from redis.asyncio import Redis, RedisCluster

__all__ = ["SessionState", "SessionStoreError", "WebSocketConnection", "WebSocketSessionManager"]

logger = logging.getLogger(__name__)

#: Longest accepted session/user/connection id, username or client field.
MAX_ID_LENGTH = 512


def _uuid4_string() -> str:
    """``str(uuid.uuid4())`` (the id format the original package returns), made cheaply."""
    digits = uuid4_hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


# A prefix wrapped in braces is a Redis Cluster hash tag: every key lands on one slot.
_KEY_PREFIX = re.compile(r"[A-Za-z0-9_.:\-]{1,100}|\{[A-Za-z0-9_.:\-]{1,100}\}")
_REDIS_SCHEMES = ("redis", "rediss", "unix")


class WebSocketSessionManager:
    """Connection sessions, heartbeats and per-session saved state (see the module docstring)."""

    def __init__(
        self,
        redis_client: Redis | RedisCluster | None = None,
        redis_url: str | None = None,
        connection_ttl: float = 3600,
        heartbeat_interval: float = 30,
        heartbeat_timeout: float = 90,
        *,
        key_prefix: str = "netrun_ws",
        clock: Callable[[], float] = time.time,
        operation_timeout: float = 5.0,
    ) -> None:
        self.connection_ttl = _positive("connection_ttl", connection_ttl)
        self.heartbeat_interval = _positive("heartbeat_interval", heartbeat_interval)
        self.heartbeat_timeout = _positive("heartbeat_timeout", heartbeat_timeout)
        if self.heartbeat_timeout < self.heartbeat_interval:
            raise ValueError(
                f"heartbeat_timeout ({heartbeat_timeout}) must be at least "
                f"heartbeat_interval ({heartbeat_interval})"
            )
        timeout = _positive("operation_timeout", operation_timeout)
        if not isinstance(key_prefix, str) or not _KEY_PREFIX.fullmatch(key_prefix):
            raise ValueError(
                "key_prefix must be 1-100 characters of letters, digits and _ . : - "
                "(optionally wrapped in {} as a Redis Cluster hash tag), "
                f"got {key_prefix!r:.60}"
            )
        if not callable(clock):
            raise ValueError("clock must be a callable returning seconds since the epoch")
        self.key_prefix = key_prefix
        self._clock = clock
        self._initialized = False
        self._opening = asyncio.Lock()
        self._backend: SessionBackend
        if redis_client is not None and redis_url is not None:
            raise ValueError("pass redis_client or redis_url, not both")
        if redis_url is not None:
            _check_redis_url(redis_url)
        if redis_client is None and redis_url is None:
            self._backend = MemorySessionBackend(self.connection_ttl)
        else:
            self._backend = RedisSessionBackend(
                client=redis_client,
                url=redis_url,
                key_prefix=key_prefix,
                ttl=self.connection_ttl,
                timeout=timeout,
            )

    # ---------------------------------------------------------------- lifecycle

    @property
    def backend_name(self) -> str:
        """``"memory"`` or ``"redis"``."""
        return self._backend.name

    @property
    def redis_client(self) -> Redis | RedisCluster | None:
        """The Redis client in use (None in memory, or before ``initialize`` with a URL)."""
        backend = self._backend
        return backend.client if isinstance(backend, RedisSessionBackend) else None

    async def initialize(self) -> None:
        """Connect to Redis and check it answers (idempotent; nothing to do in memory).

        Raises :class:`SessionStoreError` naming the URL (password masked) if Redis is
        unreachable; calling again retries. Other methods call this on first use.
        """
        async with self._opening:  # concurrent first calls open the store once
            if self._initialized:
                return
            await self._backend.open()
            self._initialized = True
        logger.debug("session manager ready (%s)", self._describe())

    async def close(self) -> None:
        """Release the Redis client this manager created (a caller's client stays open).

        The in-memory store keeps its entries. A later call initialises again.
        """
        self._initialized = False
        await self._backend.close()

    async def __aenter__(self) -> WebSocketSessionManager:
        await self.initialize()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # ---------------------------------------------------------------- connections

    async def create_connection(
        self,
        session_id: str,
        user_id: str,
        username: str,
        metadata: dict[str, Any] | None = None,
        *,
        client_ip: str | None = None,
        user_agent: str | None = None,
        tab_id: str | None = None,
    ) -> str:
        """Register a connection and return its new id (a uuid4 string).

        ``metadata`` must be a JSON-serialisable dict; it is stored as JSON, so it comes back
        as JSON would (tuples as lists, non-string keys as strings).
        """
        _require_id("session_id", session_id)
        _require_id("user_id", user_id)
        _require_id("username", username)
        for name, value in (("client_ip", client_ip), ("user_agent", user_agent)):
            _optional_text(name, value)
        _optional_text("tab_id", tab_id)
        if metadata is None:
            metadata = {}
        elif not isinstance(metadata, dict):
            raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}")
        if not self._initialized:
            await self.initialize()
        now = self._clock()
        record = ConnectionRecord(
            connection_id=_uuid4_string(),
            session_id=session_id,
            user_id=user_id,
            username=username,
            connected_at=now,
            # A JSON round trip stores what a Redis backend would give back; {} needs none.
            metadata=json.loads(strict_json("metadata", metadata)) if metadata else {},
            client_ip=client_ip,
            user_agent=user_agent,
            tab_id=tab_id,
        )
        await self._backend.add(record, now)
        logger.debug("session connection %s created for user %s", record.connection_id, user_id)
        return record.connection_id

    async def claim_and_create(self, session_id: str, user_id: str, username: str) -> str | None:
        """``claim_session(session_id, user_id)`` then ``create_connection(session_id, user_id,
        username)`` in one backend call: the new connection id, or None (and nothing changed)
        while another user holds the session."""
        record = self.new_record(session_id, user_id, username)
        if not self._initialized:
            await self.initialize()
        if not await self._backend.add_claimed(record, record.connected_at):
            return None
        logger.debug("session connection %s created for user %s", record.connection_id, user_id)
        return record.connection_id

    def new_record(self, session_id: str, user_id: str, username: str) -> ConnectionRecord:
        """The record ``create_connection`` would store (a new id, connected now), its
        arguments checked (ValueError): for a store that writes it in a call of its own."""
        _require_id("session_id", session_id)
        _require_id("user_id", user_id)
        _require_id("username", username)
        return new_connection_record(_uuid4_string(), session_id, user_id, username, self._clock())

    async def save_and_disconnect(
        self, connection_id: str, session_id: str | None, user_id: str, state: dict[str, Any]
    ) -> bool:
        """``claim_session(session_id, user_id)`` and, if the session is the user's,
        ``save_connection_state(connection_id, state)``; then ``disconnect(connection_id,
        save_state=True)``, in one backend call. Returns whether the state was saved. The
        connection is disconnected also when ``state`` is refused (ValueError, raised after)."""
        _require_id("connection_id", connection_id)
        if session_id is not None:
            _require_id("session_id", session_id)
        _require_id("user_id", user_id)
        refused: ValueError | None = None
        payload: str | None = None
        try:
            if not isinstance(state, dict):
                raise ValueError(f"state must be a dict, got {type(state).__name__}")
            payload = strict_json("state", state)
        except ValueError as error:
            refused = error
        if not self._initialized:
            await self.initialize()
        saved = await self._backend.remove_saving(
            connection_id, session_id, user_id, payload, self._clock()
        )
        logger.debug("session connection %s disconnected", connection_id)
        if refused is not None:
            raise refused
        return saved

    async def get_connection(self, connection_id: str) -> WebSocketConnection | None:
        """The connection, or None if unknown, disconnected or expired.

        A :class:`WebSocketConnection`: attributes as in netrun-websocket 1.0 (times as ISO 8601
        strings), and also a read-only mapping of netrun-ws's dict (connection_id, session_id,
        user_id, username, metadata, connected_at, last_heartbeat (epoch seconds), state (always
        ``"connected"``), client_ip, user_agent, tab_id), so ``record["user_id"]`` works too.
        """
        _require_id("connection_id", connection_id)
        if not self._initialized:
            await self.initialize()
        found = await self._backend.get(connection_id, self._clock())
        if found is None:
            return None
        record, last_heartbeat = found
        return WebSocketConnection.from_epochs(
            connection_id=record.connection_id,
            session_id=record.session_id,
            user_id=record.user_id,
            username=record.username,
            metadata=copy.deepcopy(record.metadata),
            connected_at=record.connected_at,
            last_heartbeat=last_heartbeat,
            client_ip=record.client_ip,
            user_agent=record.user_agent,
            tab_id=record.tab_id,
        )

    async def get_session_connections(self, session_id: str) -> list[WebSocketConnection]:
        """Every live connection created with ``session_id`` (on any node), oldest first.

        It reads every connection record of the store: a tool for diagnostics and tests,
        not for a per-message path.
        """
        _require_id("session_id", session_id)
        if not self._initialized:
            await self.initialize()
        snapshot = await self._backend.snapshot(self._clock())
        found = []
        for _, session, _, connection_id in snapshot.connections:
            if session == session_id:
                record = await self.get_connection(connection_id)
                if record is not None:  # gone since the snapshot
                    found.append(record)
        return sorted(found, key=lambda record: (record["connected_at"], record.connection_id))

    async def update_heartbeat(self, connection_id: str) -> bool:
        """Record a heartbeat now and restart the TTLs; False if the connection is unknown."""
        _require_id("connection_id", connection_id)
        if not self._initialized:
            await self.initialize()
        return await self._backend.touch(connection_id, self._clock())

    async def disconnect(self, connection_id: str, save_state: bool = True) -> bool:
        """Unregister a connection; True if it was registered (False for a second call).

        ``save_state=True`` keeps the session's saved state for ``connection_ttl`` more seconds
        (for a reconnect with the same session id); False deletes it.
        """
        _require_id("connection_id", connection_id)
        if not self._initialized:
            await self.initialize()
        policy: StatePolicy = "keep" if save_state else "drop"
        removed = await self._backend.remove(connection_id, self._clock(), policy)
        if removed:
            logger.debug("session connection %s disconnected", connection_id)
        return removed

    async def cleanup_stale_connections(self) -> int:
        """Remove connections whose last heartbeat is older than ``heartbeat_timeout``.

        Their sessions' saved state is kept (the client may reconnect). Returns how many were
        removed; safe to run on several nodes at once (each connection is counted once, and a
        heartbeat that lands first saves it).
        """
        if not self._initialized:
            await self.initialize()
        now = self._clock()
        removed = await self._backend.remove_stale(now - self.heartbeat_timeout, now)
        if removed:
            logger.info("removed %d stale session connection(s)", removed)
        return removed

    async def get_user_connections(self, user_id: str) -> list[str]:
        """Ids of the user's registered connections on every node sharing the store, sorted."""
        _require_id("user_id", user_id)
        if not self._initialized:
            await self.initialize()
        return sorted(await self._backend.user_connections(user_id, self._clock()))

    async def count_user_connections(self, user_id: str) -> int:
        """How many connections the user has on every node sharing the store."""
        return len(await self.get_user_connections(user_id))

    # ---------------------------------------------------------------- saved state

    async def claim_session(self, session_id: str, user_id: str) -> bool:
        """Bind ``session_id`` to ``user_id``, on every node sharing the store.

        True when the session is now bound to ``user_id`` (it was free, its binding expired, or
        it was already theirs: the binding's ``connection_ttl`` restarts); False, and nothing
        changed, while another user holds it. Only the owner's connections then save and
        restore the session's state.
        """
        _require_id("session_id", session_id)
        _require_id("user_id", user_id)
        if not self._initialized:
            await self.initialize()
        return await self._backend.claim(session_id, user_id, self._clock())

    async def save_connection_state(self, connection_id: str, state: dict[str, Any]) -> bool:
        """Save ``state`` (a JSON-serialisable dict) for the connection's session.

        Returns False if the connection is unknown, or if its session is bound to another user
        (``claim_session``). A later connection created with the same
        session id restores it, on any node sharing the store.
        """
        _require_id("connection_id", connection_id)
        if not isinstance(state, dict):
            raise ValueError(f"state must be a dict, got {type(state).__name__}")
        payload = strict_json("state", state)
        if not self._initialized:
            await self.initialize()
        return await self._backend.save_state(connection_id, payload, self._clock())

    async def restore_connection_state(self, connection_id: str) -> dict[str, Any] | None:
        """The last state saved for the connection's session, or None (none, expired, or the
        session is bound to another user)."""
        _require_id("connection_id", connection_id)
        if not self._initialized:
            await self.initialize()
        payload = await self._backend.load_state(connection_id, self._clock())
        if payload is None:
            return None
        try:
            state = json.loads(payload)
        except ValueError:
            state = None
        if not isinstance(state, dict):
            raise SessionStoreError(
                f"the saved state of connection {connection_id}'s session in {self._describe()} "
                "is not a JSON object"
            )
        return state

    # ---------------------------------------------------------------- stats

    async def get_connection_stats(self) -> dict[str, Any]:
        """Counts over every node sharing the store.

        Keys: backend, total_connections, active_connections (heartbeat within
        heartbeat_timeout), stale_connections, unique_users, unique_sessions,
        sessions_with_saved_state, redis_connected, heartbeat_interval_seconds,
        heartbeat_timeout_seconds, connection_ttl_seconds.
        """
        if not self._initialized:
            await self.initialize()
        now = self._clock()
        snapshot = await self._backend.snapshot(now)
        cutoff = now - self.heartbeat_timeout
        active = sum(1 for _, _, beat, _ in snapshot.connections if beat >= cutoff)
        return {
            "backend": self._backend.name,
            "total_connections": len(snapshot.connections),
            "active_connections": active,
            "stale_connections": len(snapshot.connections) - active,
            "unique_users": len({user for user, _, _, _ in snapshot.connections}),
            "unique_sessions": len({session for _, session, _, _ in snapshot.connections}),
            "sessions_with_saved_state": snapshot.sessions_with_saved_state,
            "redis_connected": self._backend.name == "redis" and self._initialized,
            "heartbeat_interval_seconds": self.heartbeat_interval,
            "heartbeat_timeout_seconds": self.heartbeat_timeout,
            "connection_ttl_seconds": self.connection_ttl,
        }

    # ---------------------------------------------------------------- internals

    # Every call opens the backend on first use with ``if not self._initialized: await
    # self.initialize()`` written out, not an awaited helper: a coroutine less per store call,
    # and a connection makes about six.

    def _describe(self) -> str:
        backend = self._backend
        if isinstance(backend, RedisSessionBackend):
            return f"Redis at {backend.location}"
        return "memory"

    def __repr__(self) -> str:
        return f"WebSocketSessionManager({self._describe()}, key_prefix={self.key_prefix!r})"


def _positive(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r:.40}")
    return value


def _require_id(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r:.60}")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{name} is longer than {MAX_ID_LENGTH} characters")


def _optional_text(name: str, value: object) -> None:
    if value is not None:
        _require_id(name, value)


#: ``json.dumps(value, allow_nan=False)``, with the encoder built once: dumps builds one per
#: call when given an option (a connection's state is encoded at each close).
_strict_json = json.JSONEncoder(allow_nan=False).encode


def strict_json(name: str, value: dict[str, Any]) -> str:
    """``value`` as JSON without NaN or infinities; ValueError naming ``name`` otherwise."""
    try:
        return _strict_json(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be JSON-serialisable: {exc}") from None


def _check_redis_url(url: object) -> None:
    if not isinstance(url, str) or not url:
        raise ValueError("redis_url must be a non-empty string such as redis://127.0.0.1:6379/0")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _REDIS_SCHEMES:
        raise ValueError(
            f"redis_url must start with redis://, rediss:// or unix://, got {mask_url(url)!r}"
        )
