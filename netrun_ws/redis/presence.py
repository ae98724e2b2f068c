"""Cluster presence in Redis: live nodes, per-user connection counts and room members.

Every entry names the node that owns it, and a node is alive while its key ``P:node:<id>``
exists: the node rewrites it every ``node_heartbeat`` seconds with a TTL of ``node_ttl``. Readers
count only entries of live nodes, so a node that dies without saying goodbye (kill -9) drops out
of every answer within ``node_ttl`` seconds (Redis's own clock decides, so node clocks may
differ). A janitor on every live node deletes dead nodes' entries every ``node_ttl`` seconds, so
Redis memory does not grow with crashed nodes.

Key layout (``P`` is the key prefix; it shares the namespace of
:class:`~netrun_ws.session.WebSocketSessionManager`, whose keys are ``P:conn:*``, ``P:user:*``,
``P:heartbeats`` and ``P:state:*``)::

    P:nodes                  set     ids of registered nodes (live, or dead awaiting the janitor)
    P:node:<node>            string  JSON {node_id, hostname, pid, started_at, last_seen,
                                     connections}; PX node_ttl: the node is alive while it exists
    P:node:<node>:conns      set     pair(user, connection) of the node's connections
    P:node:<node>:rooms      set     pair(room, connection) of the node's room memberships
    P:presence:user:<user>   hash    connection -> node
    P:presence:room:<room>   hash    connection -> pair(node, user)

``pair(a, b)`` is ``len(a) ":" a b`` (``len`` in bytes), which splits back unambiguously whatever
the ids contain. Every write is one Lua script, so the per-user limit is checked and the
connection added in one atomic step across the cluster.

The node is the source of truth for its own entries: it keeps a copy in memory, and rewrites
them all (one script) when its heartbeat finds its node key gone (Redis restarted and lost its
data, or the node stalled longer than ``node_ttl`` and a janitor removed it) or after a write
failed during an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

from redis.commands.core import AsyncScript

from netrun_ws.redis.calls import AnyRedis, OutageLog, RedisStoreError, RedisTarget, bounded
from netrun_ws.redis.records import CLOSE_CONNECTION, OPEN_CONNECTION

__all__ = ["RedisPresence"]

logger = logging.getLogger(__name__)

_LUA_HELPERS = """
local function pair(a, b) return #a .. ':' .. a .. b end
local function unpair(s)
  local colon = string.find(s, ':', 1, true)
  local n = tonumber(string.sub(s, 1, colon - 1))
  return string.sub(s, colon + 1, colon + n), string.sub(s, colon + n + 1)
end
local function node_key(prefix, node) return prefix .. ':node:' .. node end
local function alive(prefix, node, self_id, cache)
  if node == self_id then return true end
  local known = cache[node]
  if known == nil then
    known = redis.call('EXISTS', node_key(prefix, node)) == 1
    cache[node] = known
  end
  return known
end
local function purge(prefix, node)
  local conns = node_key(prefix, node) .. ':conns'
  for _, member in ipairs(redis.call('SMEMBERS', conns)) do
    local user, conn = unpair(member)
    local key = prefix .. ':presence:user:' .. user
    if redis.call('HGET', key, conn) == node then redis.call('HDEL', key, conn) end
  end
  local rooms = node_key(prefix, node) .. ':rooms'
  for _, member in ipairs(redis.call('SMEMBERS', rooms)) do
    local room, conn = unpair(member)
    local key = prefix .. ':presence:room:' .. room
    local value = redis.call('HGET', key, conn)
    if value and unpair(value) == node then redis.call('HDEL', key, conn) end
  end
  redis.call('DEL', conns, rooms)
end
"""

# ARGV: prefix, node, info JSON, ttl ms. Returns 1 if the node key still existed.
_HEARTBEAT = """
local key = node_key(ARGV[1], ARGV[2])
local existed = redis.call('EXISTS', key)
redis.call('SET', key, ARGV[3], 'PX', ARGV[4])
redis.call('SADD', ARGV[1] .. ':nodes', ARGV[2])
return existed
"""

# ARGV: prefix, node, connection, user, limit ('' = none). Returns 1 if added, 0 if refused.
_ADD_CONNECTION = """
local users = ARGV[1] .. ':presence:user:' .. ARGV[4]
local limit = tonumber(ARGV[5])
if limit then
  local count, cache = 0, {}
  local entries = redis.call('HGETALL', users)
  for i = 2, #entries, 2 do
    if alive(ARGV[1], entries[i], ARGV[2], cache) then count = count + 1 end
  end
  if count >= limit then return 0 end
end
redis.call('HSET', users, ARGV[3], ARGV[2])
redis.call('SADD', node_key(ARGV[1], ARGV[2]) .. ':conns', pair(ARGV[4], ARGV[3]))
return 1
"""

# ARGV: prefix, node, connection, user
_REMOVE_CONNECTION = """
local users = ARGV[1] .. ':presence:user:' .. ARGV[4]
if redis.call('HGET', users, ARGV[3]) == ARGV[2] then redis.call('HDEL', users, ARGV[3]) end
redis.call('SREM', node_key(ARGV[1], ARGV[2]) .. ':conns', pair(ARGV[4], ARGV[3]))
return 1
"""

# ARGV: prefix, node, room, connection, user
_JOIN_ROOM = """
redis.call('HSET', ARGV[1] .. ':presence:room:' .. ARGV[3], ARGV[4], pair(ARGV[2], ARGV[5]))
redis.call('SADD', node_key(ARGV[1], ARGV[2]) .. ':rooms', pair(ARGV[3], ARGV[4]))
return 1
"""

# ARGV: prefix, node, room, connection
_LEAVE_ROOM = """
redis.call('HDEL', ARGV[1] .. ':presence:room:' .. ARGV[3], ARGV[4])
redis.call('SREM', node_key(ARGV[1], ARGV[2]) .. ':rooms', pair(ARGV[3], ARGV[4]))
return 1
"""

# ARGV: prefix, node, room. Returns connection, user, connection, user, ... of live nodes.
_ROOM_MEMBERS = """
local out, cache = {}, {}
local entries = redis.call('HGETALL', ARGV[1] .. ':presence:room:' .. ARGV[3])
for i = 1, #entries, 2 do
  local node, user = unpair(entries[i + 1])
  if alive(ARGV[1], node, ARGV[2], cache) then
    table.insert(out, entries[i])
    table.insert(out, user)
  end
end
return out
"""

# ARGV: prefix, node. Returns the users with a connection on a live node (no duplicates).
_ONLINE_USERS = """
local out, seen, cache = {}, {}, {}
for _, node in ipairs(redis.call('SMEMBERS', ARGV[1] .. ':nodes')) do
  if alive(ARGV[1], node, ARGV[2], cache) then
    for _, member in ipairs(redis.call('SMEMBERS', node_key(ARGV[1], node) .. ':conns')) do
      local user = unpair(member)
      if not seen[user] then
        seen[user] = true
        table.insert(out, user)
      end
    end
  end
end
return out
"""

# ARGV: prefix, node. Deletes the entries of a node whose key is gone; 1 if it did.
_PURGE_DEAD = """
if redis.call('EXISTS', node_key(ARGV[1], ARGV[2])) == 1 then return 0 end
purge(ARGV[1], ARGV[2])
redis.call('SREM', ARGV[1] .. ':nodes', ARGV[2])
return 1
"""

# ARGV: prefix, node. This node says goodbye: entries, node key and registration go.
_RETIRE = """
purge(ARGV[1], ARGV[2])
redis.call('DEL', node_key(ARGV[1], ARGV[2]))
redis.call('SREM', ARGV[1] .. ':nodes', ARGV[2])
return 1
"""

# ARGV: prefix, node, n, then n (user, connection) pairs, then (room, connection, user) triples.
_RESYNC = """
local prefix, node = ARGV[1], ARGV[2]
purge(prefix, node)
local conns, rooms = node_key(prefix, node) .. ':conns', node_key(prefix, node) .. ':rooms'
local n = tonumber(ARGV[3])
local i = 4
for _ = 1, n do
  local user, conn = ARGV[i], ARGV[i + 1]
  redis.call('HSET', prefix .. ':presence:user:' .. user, conn, node)
  redis.call('SADD', conns, pair(user, conn))
  i = i + 2
end
while i <= #ARGV do
  local room, conn, user = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  redis.call('HSET', prefix .. ':presence:room:' .. room, conn, pair(node, user))
  redis.call('SADD', rooms, pair(room, conn))
  i = i + 3
end
return 1
"""

_SCRIPTS = {
    "heartbeat": _HEARTBEAT,
    "add_connection": _ADD_CONNECTION,
    "remove_connection": _REMOVE_CONNECTION,
    "join_room": _JOIN_ROOM,
    "leave_room": _LEAVE_ROOM,
    "room_members": _ROOM_MEMBERS,
    "online_users": _ONLINE_USERS,
    "purge_dead": _PURGE_DEAD,
    "retire": _RETIRE,
    "resync": _RESYNC,
    # A connection's session records and its count in one script (netrun_ws.redis.records).
    "open_connection": OPEN_CONNECTION,
    "close_connection": CLOSE_CONNECTION,
}


class _WriteGate:
    """Presence writes run side by side; a resync (which rewrites them all) runs alone.

    A waiting resync holds back new writes, so a steady stream of writes cannot starve it.
    """

    def __init__(self) -> None:
        self._condition = asyncio.Condition()
        self._writers = 0
        self._exclusive = False
        self._exclusive_waiting = 0

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._condition:
            await self._condition.wait_for(
                lambda: not self._exclusive and not self._exclusive_waiting
            )
            self._writers += 1
        try:
            yield
        finally:
            async with self._condition:
                self._writers -= 1
                self._condition.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._condition:
            self._exclusive_waiting += 1
            try:
                await self._condition.wait_for(lambda: not self._exclusive and not self._writers)
            finally:
                self._exclusive_waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            async with self._condition:
                self._exclusive = False
                self._condition.notify_all()


class RedisPresence:
    """This node's presence entries in Redis, and the cluster-wide answers read from them."""

    def __init__(
        self,
        client: AnyRedis,
        *,
        target: RedisTarget,
        key_prefix: str,
        node_id: str,
        node_ttl: float,
        node_heartbeat: float,
        timeout: float,
    ) -> None:
        self._client = client
        self._target = target
        self._prefix = key_prefix
        self._node_id = node_id
        self._node_ttl = node_ttl
        self._node_heartbeat = node_heartbeat
        self._timeout = timeout
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(_LUA_HELPERS + source) for name, source in _SCRIPTS.items()
        }
        self._started_at = time.time()
        # This node's own entries: the truth a resync rewrites to Redis.
        self._connections: set[tuple[str, str]] = set()  # (user, connection)
        self._memberships: dict[tuple[str, str], str] = {}  # (room, connection) -> user
        self._gate = _WriteGate()
        self._resync_needed = False
        self._last_beat: float | None = None  # monotonic time of the last successful heartbeat
        self._outage = OutageLog(logger, f"presence heartbeat to Redis at {target.location}")
        self._write_outage = OutageLog(logger, f"presence writes to Redis at {target.location}")
        self.resyncs = 0
        self.dead_nodes_removed = 0

    # ---------------------------------------------------------------- liveness

    async def beat(self) -> None:
        """Refresh this node's key; rewrite its entries if they were lost (RedisStoreError)."""
        info = json.dumps(
            {
                "node_id": self._node_id,
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "started_at": self._started_at,
                "last_seen": time.time(),
                "connections": len(self._connections),
            }
        )
        ttl_ms = max(1, round(self._node_ttl * 1000))
        try:
            existed = await self._run("heartbeat", "node heartbeat", info, ttl_ms)
        except RedisStoreError:
            # The script may still run later (a paused Redis executes what was queued), after a
            # janitor removed our entries, and then report nothing: rewrite them to be sure.
            self._resync_needed = True
            raise
        self._last_beat = time.monotonic()
        if not existed and (self._connections or self._memberships):
            logger.warning(
                "node %s was missing from Redis at %s (restarted, or this node stalled for more "
                "than node_ttl=%gs); rewriting its presence",
                self._node_id,
                self._target.location,
                self._node_ttl,
            )
            self._resync_needed = True
        if self._resync_needed:
            await self._resync()

    def alive(self) -> bool:
        """True while the last successful heartbeat is younger than ``node_ttl``."""
        beat = self._last_beat
        return beat is not None and time.monotonic() - beat < self._node_ttl

    async def run(self) -> None:
        """Heartbeat every ``node_heartbeat`` seconds and sweep dead nodes every ``node_ttl``."""
        next_sweep = time.monotonic() + self._node_ttl
        while True:
            await asyncio.sleep(self._node_heartbeat)
            try:
                await self.beat()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self._node_ttl
                    await self.sweep_dead_nodes()
            except RedisStoreError as exc:
                self._outage.failed(str(exc))
            else:
                self._outage.recovered()

    async def sweep_dead_nodes(self) -> int:
        """Delete the entries of registered nodes whose key expired; returns how many nodes."""
        members = await self._call(
            self._client.smembers(f"{self._prefix}:nodes"),
            "SMEMBERS nodes",
        )
        removed = 0
        for node in sorted(members):
            if node != self._node_id and await self._run(
                "purge_dead", "dead node sweep", node=node
            ):
                removed += 1
                logger.info("removed the presence of dead node %s", node)
        self.dead_nodes_removed += removed
        return removed

    async def retire(self) -> None:
        """Remove this node's entries and its node key (a clean shutdown)."""
        await self._run("retire", "node retire")
        self._last_beat = None

    async def _resync(self) -> None:
        async with self._gate.exclusive():
            args: list[Any] = [len(self._connections)]
            for user, connection in sorted(self._connections):
                args += [user, connection]
            for (room, connection), user in sorted(self._memberships.items()):
                args += [room, connection, user]
            await self._run("resync", "presence resync", *args)
            self._resync_needed = False
            self.resyncs += 1
            self._write_outage.recovered()

    # ---------------------------------------------------------------- writes

    async def add_connection(
        self, connection_id: str, user_id: str, max_per_user: int | None
    ) -> bool:
        limit = "" if max_per_user is None else str(max_per_user)
        async with self._gate.shared():
            try:
                added = await self._run(
                    "add_connection", "add_connection", connection_id, user_id, limit
                )
            except RedisStoreError:
                self._resync_needed = True  # the script may have run though the reply was lost
                raise
            if added:
                self._connections.add((user_id, connection_id))
            return bool(added)

    async def open_connection(self, connection_id: str, user_id: str, args: list[str]) -> str:
        """``add_connection`` with the session's records and revocations: the OPEN_CONNECTION
        script with ``args`` after the connection and user; returns its outcome."""
        async with self._gate.shared():
            try:
                outcome = await self._run(
                    "open_connection", "open_connection", connection_id, user_id, *args
                )
            except RedisStoreError:
                self._resync_needed = True  # the script may have run though the reply was lost
                raise
            if outcome == "opened":
                self._connections.add((user_id, connection_id))
            return str(outcome)

    async def close_connection(self, connection_id: str, user_id: str, args: list[str]) -> bool:
        """``remove_connection`` with the session's records: the CLOSE_CONNECTION script;
        whether the state was saved. A failure raises, and the presence is rewritten at the
        next heartbeat that reaches Redis (without this connection)."""
        async with self._gate.shared():
            self._connections.discard((user_id, connection_id))
            try:
                saved = await self._run(
                    "close_connection", "close_connection", connection_id, user_id, *args
                )
            except RedisStoreError:
                self._resync_needed = True
                raise
            return bool(saved)

    async def remove_connection(self, connection_id: str, user_id: str) -> None:
        async with self._gate.shared():
            self._connections.discard((user_id, connection_id))
            await self._write_or_defer(
                "remove_connection", "remove_connection", connection_id, user_id
            )

    async def join_room(self, room: str, connection_id: str, user_id: str) -> None:
        async with self._gate.shared():
            self._memberships[(room, connection_id)] = user_id
            await self._write_or_defer("join_room", "join_room", room, connection_id, user_id)

    async def leave_room(self, room: str, connection_id: str) -> None:
        async with self._gate.shared():
            self._memberships.pop((room, connection_id), None)
            await self._write_or_defer("leave_room", "leave_room", room, connection_id)

    async def _write_or_defer(self, script: str, operation: str, *args: Any) -> None:
        """Apply a write now, or at the next heartbeat that reaches Redis (via a resync)."""
        if self._write_outage.in_outage:
            # Redis is known to be away: don't make every disconnect wait out the timeout.
            self._resync_needed = True
            self._write_outage.failed("")
            return
        try:
            await self._run(script, operation, *args)
        except RedisStoreError as exc:
            self._resync_needed = True
            self._write_outage.failed(f"{exc}; applied when Redis answers again")

    # ---------------------------------------------------------------- reads

    async def room_members(self, room: str) -> dict[str, str]:
        flat = await self._run("room_members", "room_members", room)
        return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def online_users(self) -> set[str]:
        return {str(user) for user in await self._run("online_users", "online_users")}

    async def nodes(self) -> list[dict[str, Any]]:
        ids = sorted(
            await self._call(
                self._client.smembers(f"{self._prefix}:nodes"),
                "SMEMBERS nodes",
            )
        )
        if not ids:
            return []
        keys = [f"{self._prefix}:node:{node}" for node in ids]
        values = await self._call(self._client.mget(keys), "MGET node keys")
        found: list[dict[str, Any]] = []
        for node, value in zip(ids, values, strict=True):
            if value is None:
                continue  # expired: a dead node awaiting the janitor
            found.append(_node_info(str(node), value))
        return found

    def stats(self) -> dict[str, Any]:
        beat = self._last_beat
        return {
            "local_connections": len(self._connections),
            "local_room_memberships": len(self._memberships),
            "last_heartbeat_age": None if beat is None else time.monotonic() - beat,
            "presence_resyncs": self.resyncs,
            "presence_resync_pending": self._resync_needed,
            "dead_nodes_removed": self.dead_nodes_removed,
        }

    # ---------------------------------------------------------------- internals

    async def _run(self, script: str, operation: str, *args: Any, node: str | None = None) -> Any:
        argv = [self._prefix, node if node is not None else self._node_id, *args]
        # The scripts name their keys from the prefix; KEYS[1] (unused by them) routes the call
        # on Redis Cluster, where the prefix is a hash tag that holds every presence key.
        routing = [f"{self._prefix}:nodes"]
        return await self._call(self._scripts[script](keys=routing, args=argv), operation)

    async def _call(self, awaitable: Any, operation: str) -> Any:
        return await bounded(
            awaitable, timeout=self._timeout, operation=operation, target=self._target
        )


def _node_info(node_id: str, value: Any) -> dict[str, Any]:
    try:
        info = json.loads(value)
    except ValueError:
        info = None
    if not isinstance(info, dict):
        return {"node_id": node_id, "last_seen": None}  # written by something else: still live
    info["node_id"] = node_id
    return info
