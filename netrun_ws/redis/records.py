"""A connection's records in Redis in one script at open and one at close (``ConnectionRecords``).

At open, ``revoked`` (an MGET), ``claim_session``, ``create_connection`` (a MULTI/EXEC) and
``add_connection`` were four round trips; at close, ``claim_session``, ``save_connection_state``,
``remove_connection`` and ``disconnect`` four more. Each script here does the same writes as those
scripts and commands, in their order, in one round trip, on the keys of
:mod:`netrun_ws.session` (``P:conn``, ``P:user``, ``P:heartbeats``, ``P:owner``, ``P:state``), of
:mod:`netrun_ws.redis.presence` (whose Lua helpers ``pair``, ``node_key`` and ``alive`` they use,
and which runs them) and of revocations (``P:revoked:<subject>``). Every key is under the one
prefix, a hash tag on Redis Cluster, so each script stays on one slot.
"""

from __future__ import annotations

from collections.abc import Sequence

from netrun_ws.store import RevocationCheck

__all__ = ["CLOSE_CONNECTION", "OPEN_CONNECTION", "revocation_args"]

# ARGV: prefix, node, connection, user, session, record JSON, now, ttl ms, limit ('' = none),
# now again for revocations, n, then n (subject, issued_at ('' = none)) pairs.
# Returns 'opened', 'revoked', 'session_not_yours' or 'user_limit'.
OPEN_CONNECTION = """
local prefix, node, conn, user, session = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ttl = ARGV[8]
local now = tonumber(ARGV[10])
for i = 12, 11 + 2 * tonumber(ARGV[11]), 2 do
  local value = redis.call('GET', prefix .. ':revoked:' .. ARGV[i])
  if value then
    -- as RedisStore.revoked reads it: unreadable or not finite counts as revoked now
    local at = tonumber(value)
    if at == nil or at ~= at or at == math.huge or at == -math.huge then at = now end
    local issued = tonumber(ARGV[i + 1])
    if issued == nil or issued <= at then return 'revoked' end
  end
end
local owner_key = prefix .. ':owner:' .. session
local owner = redis.call('GET', owner_key)
if owner and owner ~= user then return 'session_not_yours' end
redis.call('SET', owner_key, user, 'PX', ttl)
local users = prefix .. ':presence:user:' .. user
local limit = tonumber(ARGV[9])
if limit then
  local count, cache = 0, {}
  local entries = redis.call('HGETALL', users)
  for i = 2, #entries, 2 do
    if alive(prefix, entries[i], node, cache) then count = count + 1 end
  end
  if count >= limit then
    -- what creating the record and removing it again, keeping the state, would leave
    redis.call('PEXPIRE', prefix .. ':state:' .. session, ttl)
    return 'user_limit'
  end
end
local conn_key = prefix .. ':conn:' .. conn
redis.call('HSET', conn_key, 'user_id', user, 'session_id', session, 'data', ARGV[6])
redis.call('PEXPIRE', conn_key, ttl)
local user_key = prefix .. ':user:' .. user
redis.call('SADD', user_key, conn)
redis.call('PEXPIRE', user_key, ttl)
local beats = prefix .. ':heartbeats'
redis.call('ZADD', beats, ARGV[7], conn)
redis.call('PEXPIRE', beats, ttl)
redis.call('HSET', users, conn, node)
redis.call('SADD', node_key(prefix, node) .. ':conns', pair(user, conn))
return 'opened'
"""

# ARGV: prefix, node, connection, user, session ('' = none), state JSON ('' = none), ttl ms.
# Returns 1 if the state was saved.
CLOSE_CONNECTION = """
local prefix, node, conn, user, session = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ttl = ARGV[7]
local conn_key = prefix .. ':conn:' .. conn
local saved = 0
if session ~= '' then
  local owner_key = prefix .. ':owner:' .. session
  local owner = redis.call('GET', owner_key)
  if not owner or owner == user then
    redis.call('SET', owner_key, user, 'PX', ttl)
    local ids = redis.call('HMGET', conn_key, 'user_id', 'session_id')
    if ARGV[6] ~= '' and ids[2] then
      local record_owner_key = prefix .. ':owner:' .. ids[2]
      local record_owner = redis.call('GET', record_owner_key)
      if not record_owner or record_owner == ids[1] then
        if record_owner then redis.call('PEXPIRE', record_owner_key, ttl) end
        redis.call('SET', prefix .. ':state:' .. ids[2], ARGV[6], 'PX', ttl)
        saved = 1
      end
    end
  end
end
local users = prefix .. ':presence:user:' .. user
if redis.call('HGET', users, conn) == node then redis.call('HDEL', users, conn) end
redis.call('SREM', node_key(prefix, node) .. ':conns', pair(user, conn))
redis.call('ZREM', prefix .. ':heartbeats', conn)
local ids = redis.call('HMGET', conn_key, 'user_id', 'session_id')
if ids[1] then
  redis.call('DEL', conn_key)
  redis.call('SREM', prefix .. ':user:' .. ids[1], conn)
  if redis.call('PEXPIRE', prefix .. ':state:' .. ids[2], ttl) == 1 then
    local owner_key = prefix .. ':owner:' .. ids[2]
    if redis.call('GET', owner_key) == ids[1] then redis.call('PEXPIRE', owner_key, ttl) end
  end
end
return saved
"""


def revocation_args(checks: Sequence[RevocationCheck]) -> list[str]:
    """The checks as OPEN_CONNECTION's trailing arguments: their count, then the pairs."""
    args = [str(len(checks))]
    for subject, issued_at in checks:
        args += [subject, "" if issued_at is None else repr(issued_at)]
    return args
