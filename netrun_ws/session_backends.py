"""Storage backends of :class:`netrun_ws.session.WebSocketSessionManager`: memory and Redis.

The manager owns the behaviour (validation, ids, clock, JSON, stats); a backend only stores.
Both backends implement :class:`SessionBackend`, take ``now`` from the manager's clock, and give
the same answers for the same calls. The Redis key layout is documented in
:mod:`netrun_ws.session`. redis-py is imported only when a :class:`RedisSessionBackend` is built,
so this module imports without the ``redis`` extra.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from netrun_ws._masking import mask_url, scrub_password
from netrun_ws.extras import require_extra
from netrun_ws.ids_by_user import IdsByUser

if TYPE_CHECKING:
    from redis.asyncio import Redis, RedisCluster

__all__ = [
    "ConnectionRecord",
    "MemorySessionBackend",
    "RedisSessionBackend",
    "SessionBackend",
    "SessionSnapshot",
    "SessionStoreError",
    "StatePolicy",
    "mask_url",
    "new_connection_record",
]

T = TypeVar("T")

#: What removing a connection does to its session's saved state: "keep" it (its TTL restarts)
#: or "drop" it.
StatePolicy = Literal["keep", "drop"]


class SessionStoreError(ConnectionError):
    """The session store (Redis) failed or did not answer in time.

    The message names the store by its URL with any password masked, the operation and the
    cause. The manager stays usable: the next call reconnects.
    """


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    """The immutable part of a registered connection (the heartbeat is kept apart)."""

    connection_id: str
    session_id: str
    user_id: str
    username: str
    connected_at: float
    metadata: dict[str, Any] = field(default_factory=dict)
    client_ip: str | None = None
    user_agent: str | None = None
    tab_id: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "connection_id": self.connection_id,
                "session_id": self.session_id,
                "user_id": self.user_id,
                "username": self.username,
                "connected_at": self.connected_at,
                "metadata": self.metadata,
                "client_ip": self.client_ip,
                "user_agent": self.user_agent,
                "tab_id": self.tab_id,
            },
            allow_nan=False,
        )

    @classmethod
    def from_json(cls, text: str) -> ConnectionRecord:
        data = json.loads(text)
        return cls(
            connection_id=data["connection_id"],
            session_id=data["session_id"],
            user_id=data["user_id"],
            username=data["username"],
            connected_at=float(data["connected_at"]),
            metadata=data.get("metadata") or {},
            client_ip=data.get("client_ip"),
            user_agent=data.get("user_agent"),
            tab_id=data.get("tab_id"),
        )


# Each field's slot descriptor, in field order. A frozen dataclass's __init__ sets every field
# through object.__setattr__, which first checks (walking the class's bases) that no
# __setattr__ is being bypassed: about half of the 15,500 instructions a record cost.
_RECORD_SLOTS = tuple(
    ConnectionRecord.__dict__[spec.name].__set__ for spec in fields(ConnectionRecord)
)


def new_connection_record(
    connection_id: str, session_id: str, user_id: str, username: str, connected_at: float
) -> ConnectionRecord:
    """``ConnectionRecord(connection_id, session_id, user_id, username, connected_at)``, the
    other fields at their defaults, for about half the instructions (one per connection)."""
    record = object.__new__(ConnectionRecord)
    set_id, set_session, set_user, set_name, set_at, set_metadata, set_ip, set_agent, set_tab = (
        _RECORD_SLOTS
    )
    set_id(record, connection_id)
    set_session(record, session_id)
    set_user(record, user_id)
    set_name(record, username)
    set_at(record, connected_at)
    set_metadata(record, {})
    set_ip(record, None)
    set_agent(record, None)
    set_tab(record, None)
    return record


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """What ``get_connection_stats`` is computed from."""

    #: (user_id, session_id, last_heartbeat, connection_id) of every registered connection.
    connections: list[tuple[str, str, float, str]]
    sessions_with_saved_state: int


class SessionBackend(Protocol):
    """Storage for connections and per-session saved state. Every method is atomic."""

    #: "memory" or "redis", reported by ``get_connection_stats``.
    name: str

    async def open(self) -> None:
        """Connect (idempotent); raises SessionStoreError if the store does not answer."""

    async def close(self) -> None:
        """Release what ``open`` acquired."""

    async def add(self, record: ConnectionRecord, now: float) -> None:
        """Register a connection with ``now`` as its last heartbeat."""

    async def get(self, connection_id: str, now: float) -> tuple[ConnectionRecord, float] | None:
        """The record and last heartbeat, or None if unknown or expired."""

    async def touch(self, connection_id: str, now: float) -> bool:
        """Set the last heartbeat to ``now`` and restart the TTLs; False if unknown."""

    async def remove(self, connection_id: str, now: float, state: StatePolicy) -> bool:
        """Unregister a connection; True only for the call that removed it."""

    async def remove_stale(self, cutoff: float, now: float) -> int:
        """Remove connections whose last heartbeat is before ``cutoff`` (state kept)."""

    async def claim(self, session_id: str, user_id: str, now: float) -> bool:
        """Bind the session to ``user_id`` (or restart the binding's TTL); False, and nothing
        changed, while another user holds it."""

    async def add_claimed(self, record: ConnectionRecord, now: float) -> bool:
        """``claim`` the record's session for its user, then ``add`` the record; False, and
        nothing changed, while another user holds the session."""

    async def remove_saving(
        self,
        connection_id: str,
        session_id: str | None,
        user_id: str,
        payload: str | None,
        now: float,
    ) -> bool:
        """``claim`` the session for ``user_id`` and, if it is theirs (and ``payload`` is given),
        ``save_state``; then ``remove`` the connection keeping the state, also when saving
        failed. Returns whether the state was saved."""

    async def save_state(self, connection_id: str, payload: str, now: float) -> bool:
        """Store ``payload`` under the connection's session id; False if unknown, or if the
        session is bound to another user."""

    async def load_state(self, connection_id: str, now: float) -> str | None:
        """The saved state of the connection's session, or None (also when the session is bound
        to another user)."""

    async def user_connections(self, user_id: str, now: float) -> list[str]:
        """Ids of the user's registered connections (any order)."""

    async def snapshot(self, now: float) -> SessionSnapshot:
        """Every registered connection and the number of saved session states."""


# --------------------------------------------------------------------------------------------
# memory


#: Saved states plus session bindings held before the first sweep of expired ones.
_FIRST_SWEEP = 1024


@dataclass(slots=True)
class _MemoryEntry:
    record: ConnectionRecord
    last_heartbeat: float
    expires_at: float


class MemorySessionBackend:
    """Dicts in this process; TTLs are measured with the manager's clock (``now``)."""

    name = "memory"

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._connections: dict[str, _MemoryEntry] = {}
        self._users = IdsByUser()
        self._states: dict[str, tuple[str, float]] = {}  # session id -> (payload, expires_at)
        self._owners: dict[str, tuple[str, float]] = {}  # session id -> (user id, expires_at)
        # Sessions never resumed are not read again: expired ones are swept once the saved
        # states and bindings double (amortised O(1) per write), as Redis expires its keys.
        self._sweep_at = _FIRST_SWEEP

    def stored_entries(self) -> int:
        """How many connection, user-index, state and owner entries are held (diagnostics,
        tests)."""
        return len(self._connections) + len(self._users) + len(self._states) + len(self._owners)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # The async methods are each one step of plain dict work: the sync cores below let the
    # merged calls (add_claimed, remove_saving) run several without a coroutine apiece.

    async def add(self, record: ConnectionRecord, now: float) -> None:
        self._add(record, now)

    def _add(self, record: ConnectionRecord, now: float, expires_at: float | None = None) -> None:
        if expires_at is None:
            expires_at = now + self._ttl
        self._connections[record.connection_id] = _MemoryEntry(record, now, expires_at)
        self._users.add(record.user_id, record.connection_id)

    async def add_claimed(self, record: ConnectionRecord, now: float) -> bool:
        # The session's binding and the record expire together: one float for both, not two.
        expires_at = now + self._ttl
        if not self._claim(record.session_id, record.user_id, now, expires_at):
            return False
        self._add(record, now, expires_at)
        return True

    async def remove_saving(
        self,
        connection_id: str,
        session_id: str | None,
        user_id: str,
        payload: str | None,
        now: float,
    ) -> bool:
        saved = (
            session_id is not None
            and self._claim(session_id, user_id, now)
            and payload is not None
            and self._save_state(connection_id, payload, now)
        )
        self._remove(connection_id, now, "keep")
        return saved

    async def get(self, connection_id: str, now: float) -> tuple[ConnectionRecord, float] | None:
        entry = self._live(connection_id, now)
        return None if entry is None else (entry.record, entry.last_heartbeat)

    async def touch(self, connection_id: str, now: float) -> bool:
        entry = self._live(connection_id, now)
        if entry is None:
            return False
        entry.last_heartbeat = now
        entry.expires_at = now + self._ttl
        return True

    async def remove(self, connection_id: str, now: float, state: StatePolicy) -> bool:
        return self._remove(connection_id, now, state)

    def _remove(self, connection_id: str, now: float, state: StatePolicy) -> bool:
        entry = self._live(connection_id, now)
        if entry is None:
            return False
        self._forget(entry.record)
        session_id = entry.record.session_id
        saved = self._states.get(session_id)
        if state == "drop":
            self._states.pop(session_id, None)
        elif saved is not None and saved[1] > now:
            self._states[session_id] = (saved[0], now + self._ttl)
            if self._owner(session_id, now) == entry.record.user_id:  # outlives the state
                self._owners[session_id] = (entry.record.user_id, now + self._ttl)
        return True

    async def remove_stale(self, cutoff: float, now: float) -> int:
        self._purge(now)
        stale = [e for e in self._connections.values() if e.last_heartbeat < cutoff]
        for entry in stale:
            await self.remove(entry.record.connection_id, now, "keep")
        return len(stale)

    async def claim(self, session_id: str, user_id: str, now: float) -> bool:
        return self._claim(session_id, user_id, now)

    def _claim(
        self, session_id: str, user_id: str, now: float, expires_at: float | None = None
    ) -> bool:
        owner = self._owner(session_id, now)
        if owner is not None and owner != user_id:
            return False
        self._owners[session_id] = (user_id, now + self._ttl if expires_at is None else expires_at)
        self._sweep_if_grown(now)
        return True

    async def save_state(self, connection_id: str, payload: str, now: float) -> bool:
        return self._save_state(connection_id, payload, now)

    def _save_state(self, connection_id: str, payload: str, now: float) -> bool:
        entry = self._live(connection_id, now)
        if entry is None:
            return False
        session_id, user_id = entry.record.session_id, entry.record.user_id
        owner = self._owner(session_id, now)
        if owner is not None:
            if owner != user_id:
                return False
            self._owners[session_id] = (user_id, now + self._ttl)
        self._states[session_id] = (payload, now + self._ttl)
        self._sweep_if_grown(now)
        return True

    async def load_state(self, connection_id: str, now: float) -> str | None:
        entry = self._live(connection_id, now)
        if entry is None:
            return None
        owner = self._owner(entry.record.session_id, now)
        if owner is not None and owner != entry.record.user_id:
            return None
        saved = self._states.get(entry.record.session_id)
        if saved is None or saved[1] <= now:
            return None
        return saved[0]

    async def user_connections(self, user_id: str, now: float) -> list[str]:
        ids = list(self._users.ids(user_id))
        return [cid for cid in ids if self._live(cid, now) is not None]

    async def snapshot(self, now: float) -> SessionSnapshot:
        self._purge(now)
        connections = [
            (e.record.user_id, e.record.session_id, e.last_heartbeat, e.record.connection_id)
            for e in self._connections.values()
        ]
        return SessionSnapshot(connections, len(self._states))

    def _live(self, connection_id: str, now: float) -> _MemoryEntry | None:
        entry = self._connections.get(connection_id)
        if entry is not None and entry.expires_at <= now:
            self._forget(entry.record)  # expired, as a Redis key would
            return None
        return entry

    def _owner(self, session_id: str, now: float) -> str | None:
        bound = self._owners.get(session_id)
        if bound is None:
            return None
        if bound[1] <= now:
            del self._owners[session_id]  # expired, as a Redis key would
            return None
        return bound[0]

    def _forget(self, record: ConnectionRecord) -> None:
        del self._connections[record.connection_id]
        self._users.discard(record.user_id, record.connection_id)

    def _sweep_if_grown(self, now: float) -> None:
        if len(self._states) + len(self._owners) >= self._sweep_at:
            self._purge(now)
            self._sweep_at = max(_FIRST_SWEEP, 2 * (len(self._states) + len(self._owners)))

    def _purge(self, now: float) -> None:
        for entry in [e for e in self._connections.values() if e.expires_at <= now]:
            self._forget(entry.record)
        for session_id in [s for s, (_, exp) in self._states.items() if exp <= now]:
            del self._states[session_id]
        for session_id in [s for s, (_, exp) in self._owners.items() if exp <= now]:
            del self._owners[session_id]


# --------------------------------------------------------------------------------------------
# Redis

# The scripts build the user/state key names from the prefix and the stored ids, so a
# disconnect or heartbeat is one atomic round trip without first reading the record.
_TOUCH = """
local user_id = redis.call('HGET', KEYS[1], 'user_id')
if not user_id then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', ARGV[4] .. ':user:' .. user_id, ARGV[3])
return 1
"""

# ARGV[5]: "" for a plain disconnect, else the stale cutoff; a heartbeat that arrived after the
# connection was listed as stale wins.
_REMOVE = """
if ARGV[5] ~= '' then
  local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if score and tonumber(score) >= tonumber(ARGV[5]) then return 0 end
end
redis.call('ZREM', KEYS[2], ARGV[1])
local ids = redis.call('HMGET', KEYS[1], 'user_id', 'session_id')
if not ids[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', ARGV[2] .. ':user:' .. ids[1], ARGV[1])
local state_key = ARGV[2] .. ':state:' .. ids[2]
if ARGV[3] == 'drop' then
  redis.call('DEL', state_key)
elseif redis.call('PEXPIRE', state_key, ARGV[4]) == 1 then
  local owner_key = ARGV[2] .. ':owner:' .. ids[2]
  if redis.call('GET', owner_key) == ids[1] then  -- the binding outlives the state
    redis.call('PEXPIRE', owner_key, ARGV[4])
  end
end
return 1
"""

# A session bound to another user (P:owner:<session_id>) is neither overwritten nor read.
_CLAIM = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_SAVE_STATE = """
local ids = redis.call('HMGET', KEYS[1], 'user_id', 'session_id')
if not ids[2] then return 0 end
local owner_key = ARGV[1] .. ':owner:' .. ids[2]
local owner = redis.call('GET', owner_key)
if owner then
  if owner ~= ids[1] then return 0 end
  redis.call('PEXPIRE', owner_key, ARGV[3])
end
redis.call('SET', ARGV[1] .. ':state:' .. ids[2], ARGV[2], 'PX', ARGV[3])
return 1
"""

_LOAD_STATE = """
local ids = redis.call('HMGET', KEYS[1], 'user_id', 'session_id')
if not ids[2] then return false end
local owner = redis.call('GET', ARGV[1] .. ':owner:' .. ids[2])
if owner and owner ~= ids[1] then return false end
return redis.call('GET', ARGV[1] .. ':state:' .. ids[2])
"""

# Drops ids whose connection key expired (a dead node's entries) while reading the set.
_USER_CONNECTIONS = """
local live = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. ':conn:' .. id) == 1 then
    table.insert(live, id)
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return live
"""

_STATS_BATCH = 500
#: Connections in the pool of a client created from a URL.
POOL_SIZE = 32


def _text(value: Any) -> str:
    # A caller's client may have decode_responses=False.
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisSessionBackend:
    """Redis through redis-py asyncio; entries expire by Redis TTLs, so a dead node's vanish.

    Give ``client`` (not closed by :meth:`close`; the caller owns it) or ``url`` (a client is
    created with bounded socket timeouts and a short retry, and closed by :meth:`close`).
    Every operation is bounded by ``timeout`` seconds.
    """

    name = "redis"

    def __init__(
        self,
        *,
        client: Redis | RedisCluster | None,
        url: str | None,
        key_prefix: str,
        ttl: float,
        timeout: float,
    ) -> None:
        self._redis = require_extra(
            "redis.asyncio", "redis", "WebSocketSessionManager with Redis", distribution="redis"
        )
        self._errors = require_extra("redis.exceptions", "redis", "WebSocketSessionManager")
        self._url = url
        self._client: Redis | RedisCluster | None = client
        self._owns_client = client is None
        self._prefix = key_prefix
        self._ttl_ms = max(1, round(ttl * 1000))
        self._timeout = timeout
        self.location = mask_url(url) if url is not None else _describe_client(client)
        self._scripts: dict[str, Any] = {}
        self._heartbeats = f"{key_prefix}:heartbeats"

    @property
    def client(self) -> Redis | RedisCluster | None:
        return self._client

    async def open(self) -> None:
        if self._client is None:
            self._client = self._make_client()
        client = self._client
        for name, source in (
            ("touch", _TOUCH),
            ("remove", _REMOVE),
            ("claim", _CLAIM),
            ("save_state", _SAVE_STATE),
            ("load_state", _LOAD_STATE),
            ("user_connections", _USER_CONNECTIONS),
        ):
            self._scripts[name] = client.register_script(source)
        try:
            await self._call("PING", lambda: client.ping())
        except SessionStoreError:
            await self.close()
            raise

    async def close(self) -> None:
        # A caller's client is left open: the caller owns it.
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def add(self, record: ConnectionRecord, now: float) -> None:
        client = self._require_client()
        conn, user = self._conn_key(record.connection_id), self._user_key(record.user_id)
        fields: dict[Any, Any] = {
            "user_id": record.user_id,
            "session_id": record.session_id,
            "data": record.to_json(),
        }

        async def create() -> None:
            # MULTI/EXEC: one round trip, and never half written.
            async with client.pipeline(transaction=True) as pipe:
                pipe.hset(conn, mapping=fields)
                pipe.pexpire(conn, self._ttl_ms)
                pipe.sadd(user, record.connection_id)
                pipe.pexpire(user, self._ttl_ms)
                pipe.zadd(self._heartbeats, {record.connection_id: now})
                pipe.pexpire(self._heartbeats, self._ttl_ms)
                await pipe.execute()

        await self._call("create_connection", create)

    async def get(self, connection_id: str, now: float) -> tuple[ConnectionRecord, float] | None:
        client = self._require_client()

        async def read() -> list[Any]:
            async with client.pipeline(transaction=True) as pipe:
                pipe.hget(self._conn_key(connection_id), "data")
                pipe.zscore(self._heartbeats, connection_id)
                return list(await pipe.execute())

        data, score = await self._call("get_connection", read)
        if data is None:
            return None
        record = self._decode_record(data)
        return record, float(score) if score is not None else record.connected_at

    async def touch(self, connection_id: str, now: float) -> bool:
        keys = [self._conn_key(connection_id), self._heartbeats]
        args = [connection_id, repr(now), self._ttl_ms, self._prefix]
        return bool(await self._script("touch", "update_heartbeat", keys, args))

    async def remove(self, connection_id: str, now: float, state: StatePolicy) -> bool:
        keys = [self._conn_key(connection_id), self._heartbeats]
        args = [connection_id, self._prefix, state, self._ttl_ms, ""]
        return bool(await self._script("remove", "disconnect", keys, args))

    async def remove_stale(self, cutoff: float, now: float) -> int:
        client = self._require_client()
        script = self._scripts["remove"]

        async def sweep() -> int:
            ids = await client.zrangebyscore(self._heartbeats, "-inf", f"({cutoff!r}")
            if not ids:
                return 0
            async with client.pipeline(transaction=False) as pipe:
                for raw in ids:
                    cid = _text(raw)
                    keys = [self._conn_key(cid), self._heartbeats]
                    args = [cid, self._prefix, "keep", self._ttl_ms, repr(cutoff)]
                    await script(keys=keys, args=args, client=pipe)
                results = await pipe.execute()
            return sum(1 for result in results if result == 1)

        return await self._call("cleanup_stale_connections", sweep)

    async def claim(self, session_id: str, user_id: str, now: float) -> bool:
        keys = [f"{self._prefix}:owner:{session_id}"]
        return bool(await self._script("claim", "claim_session", keys, [user_id, self._ttl_ms]))

    async def add_claimed(self, record: ConnectionRecord, now: float) -> bool:
        if not await self.claim(record.session_id, record.user_id, now):
            return False
        await self.add(record, now)
        return True

    async def remove_saving(
        self,
        connection_id: str,
        session_id: str | None,
        user_id: str,
        payload: str | None,
        now: float,
    ) -> bool:
        saved = False
        try:
            if session_id is not None and await self.claim(session_id, user_id, now):
                saved = payload is not None and await self.save_state(connection_id, payload, now)
        finally:
            await self.remove(connection_id, now, "keep")
        return saved

    async def save_state(self, connection_id: str, payload: str, now: float) -> bool:
        keys = [self._conn_key(connection_id)]
        args = [self._prefix, payload, self._ttl_ms]
        return bool(await self._script("save_state", "save_connection_state", keys, args))

    async def load_state(self, connection_id: str, now: float) -> str | None:
        keys = [self._conn_key(connection_id)]
        result = await self._script("load_state", "restore_connection_state", keys, [self._prefix])
        return None if result is None else _text(result)

    async def user_connections(self, user_id: str, now: float) -> list[str]:
        keys = [self._user_key(user_id)]
        result = await self._script(
            "user_connections", "get_user_connections", keys, [self._prefix]
        )
        return [_text(cid) for cid in result]

    async def snapshot(self, now: float) -> SessionSnapshot:
        client = self._require_client()

        async def read() -> SessionSnapshot:
            beats: list[Any] = list(await client.zrange(self._heartbeats, 0, -1, withscores=True))
            connections: list[tuple[str, str, float, str]] = []
            for start in range(0, len(beats), _STATS_BATCH):
                batch = beats[start : start + _STATS_BATCH]
                async with client.pipeline(transaction=False) as pipe:
                    for raw_id, _ in batch:
                        pipe.hmget(self._conn_key(_text(raw_id)), ["user_id", "session_id"])
                    rows = await pipe.execute()
                for (raw_id, score), (user_id, session_id) in zip(batch, rows, strict=True):
                    if user_id is not None:  # else expired: a dead node's leftover
                        row = (_text(user_id), _text(session_id), float(score), _text(raw_id))
                        connections.append(row)
            states = 0
            async for _ in client.scan_iter(match=f"{self._prefix}:state:*", count=500):
                states += 1
            return SessionSnapshot(connections, states)

        return await self._call("get_connection_stats", read)

    # ----------------------------------------------------------------------------------------

    def _conn_key(self, connection_id: str) -> str:
        return f"{self._prefix}:conn:{connection_id}"

    def _user_key(self, user_id: str) -> str:
        return f"{self._prefix}:user:{user_id}"

    def _make_client(self) -> Redis:
        assert self._url is not None
        retry_module = require_extra("redis.asyncio.retry", "redis", "WebSocketSessionManager")
        backoff = require_extra("redis.backoff", "redis", "WebSocketSessionManager")
        # Short retry so a restarted Redis is reconnected transparently, within the timeout.
        retry = retry_module.Retry(backoff.ExponentialBackoff(cap=0.5, base=0.05), 2)
        try:
            # Blocking pool: a burst of calls waits for a free connection (bounded by the
            # timeout) instead of failing with "Too many connections".
            pool = self._redis.BlockingConnectionPool.from_url(
                self._url,
                max_connections=POOL_SIZE,
                timeout=self._timeout,
                decode_responses=True,
                socket_connect_timeout=self._timeout,
                socket_timeout=self._timeout,
                retry=retry,
                retry_on_error=[self._errors.ConnectionError, self._errors.TimeoutError],
            )
        except ValueError:
            raise ValueError(f"redis_url is not a valid Redis URL: {self.location}") from None
        client: Redis = self._redis.Redis.from_pool(pool)  # the client closes its pool
        return client

    def _require_client(self) -> Redis | RedisCluster:
        if self._client is None:
            raise SessionStoreError(f"the session store at {self.location} is not open")
        return self._client

    def _decode_record(self, data: Any) -> ConnectionRecord:
        try:
            return ConnectionRecord.from_json(_text(data))
        except (ValueError, KeyError, TypeError) as exc:
            raise SessionStoreError(
                f"Redis at {self.location} holds a malformed connection record "
                f"under {self._prefix}:conn:*: {type(exc).__name__}"
            ) from None

    async def _script(self, name: str, operation: str, keys: list[str], args: list[Any]) -> Any:
        self._require_client()
        script = self._scripts[name]
        return await self._call(operation, lambda: script(keys=keys, args=args))

    async def _call(self, operation: str, action: Callable[[], Awaitable[T]]) -> T:
        """Run one store operation, bounded in time, with store failures as SessionStoreError."""
        try:
            return await asyncio.wait_for(action(), self._timeout)
        except TimeoutError:
            raise SessionStoreError(
                f"Redis at {self.location} did not answer {operation} within {self._timeout:g}s"
            ) from None
        except (self._errors.RedisError, OSError) as exc:
            raise SessionStoreError(
                f"Redis at {self.location} failed during {operation}: "
                f"{type(exc).__name__}: {self._scrub(str(exc))}"
            ) from exc

    def _scrub(self, text: str) -> str:
        return scrub_password(self._url, text)


def _describe_client(client: Redis | RedisCluster | None) -> str:
    """A password-free URL for a caller's client, from its connection settings."""
    pool = getattr(client, "connection_pool", None)
    if client is not None and pool is None:
        return "Redis Cluster (caller's client)"  # no single pool, hence no single address
    try:
        kwargs = pool.connection_kwargs if pool is not None else {}
    except AttributeError:
        return "redis (caller's client)"
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"redis://{host}:{port}/{kwargs.get('db', 0)}"
