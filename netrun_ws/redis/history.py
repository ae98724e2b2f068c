"""Channel history in Redis: positions assigned atomically with the cluster PUBLISH.

Keys, per channel ``C`` (``room:<room>`` / ``user:<user_id>``) under the base ``T`` of its slot
group (:mod:`netrun_ws.redis.layout`: the prefix ``P`` on one Redis, the group's hash tag
``{P:<g>}`` on Redis Cluster):

- ``T:h:C`` (hash): ``epoch`` and ``top`` (the last offset). Created with a fresh random epoch
  when missing (first use, expiry, FLUSHALL, a restart without persistence), which also empties
  the stream: positions of a lost history are never mistaken for current ones. It expires
  ``max(ttl, session ttl)`` after the channel's last use, so a quiet channel keeps its epoch as
  long as a session could resume.
- ``T:h:C:s`` (stream): one entry per message, id ``<offset>-1``, fields ``t`` (unix ms) and
  ``p`` (the payload without ``pos``); trimmed to ``size`` entries; expires ``ttl`` after the last
  message (every entry is older than ``ttl`` by then).
- ``T:hj:<session_id>`` (hash): channel -> ``"<offset> <epoch>"``, where the session joined the
  group's channels (one hash per group, in the slot of the channels it records); expires with
  the session. A session's channels are read from every group's hash.

Publishing is ONE script call: HINCRBY top, XADD (+MAXLEN trim), PUBLISH on the channel's bus
with the position in the header (on Redis Cluster SPUBLISH on its group's bus ``{P:<g>}:bus``,
which shares the group tag's slot with the keys). On one Redis it is an EVALSHA on the store's
pipelined publish connection (:mod:`netrun_ws.redis.pipeline`), written with the other
publishes of its loop turn (packed here: the arguments that depend only on the channel once per
channel).
Redis runs a slot's scripts one at a time, so each bus carries each of its channels' messages in
offset order, and every node (the origin included) delivers them from the bus in that order.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from netrun_ws import fast_records
from netrun_ws.config import HistoryConfig
from netrun_ws.history import new_epoch, splice_position, utf8_size
from netrun_ws.redis.calls import AnyRedis, RedisStoreError, RedisTarget, bounded
from netrun_ws.redis.layout import KeyLayout
from netrun_ws.redis.pipeline import PipelinedConnection
from netrun_ws.store import HistoryRead, Position

__all__ = ["RedisHistory"]

#: Channels whose packed publish arguments are remembered (all dropped when it is reached).
_MAX_PACKED_CHANNELS = 1024

# Creates the channel's epoch if it is missing (emptying a leftover stream). KEYS[1] meta,
# KEYS[2] stream; ARGV[1] new epoch, ARGV[2] meta ttl (s).
_ENSURE = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
"""

_PUBLISH = (
    _ENSURE
    + """
-- ARGV[3] size, ARGV[4] stream ttl (s), ARGV[5] now (ms), ARGV[6] bus header without its
-- closing bracket, ARGV[7] payload, ARGV[8] bus channel, ARGV[9] PUBLISH or SPUBLISH (cluster)
local top = redis.call('HINCRBY', KEYS[1], 'top', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], top .. '-1', 't', ARGV[5], 'p', ARGV[7])
redis.call('EXPIRE', KEYS[2], ARGV[4])
local receivers = redis.call(
  ARGV[9], ARGV[8], ARGV[6] .. ',' .. top .. ',"' .. epoch .. '"]\\n' .. ARGV[7])
return {top, epoch, receivers}
"""
)

# KEYS[3] (optional) the session's join hash: ARGV[3] channel, ARGV[4] session ttl (s).
_TOP = (
    _ENSURE
    + """
local top = redis.call('HGET', KEYS[1], 'top')
if KEYS[3] then
  redis.call('HSET', KEYS[3], ARGV[3], top .. ' ' .. epoch)
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
return {tonumber(top), epoch}
"""
)

# ARGV[3] since offset, ARGV[4] since epoch, ARGV[5] max messages, ARGV[6] max bytes. Past
# max bytes of payloads (each without its `pos`, so never more than as sent) only the first
# entry is returned ('too_big'): what a resume reads from Redis is bounded in bytes too.
_SINCE = (
    _ENSURE
    + """
local top = tonumber(redis.call('HGET', KEYS[1], 'top'))
local since = tonumber(ARGV[3])
if epoch ~= ARGV[4] then return {'epoch_changed', top, epoch} end
if since > top then return {'out_of_history', top, epoch} end
if top - since > tonumber(ARGV[5]) then return {'truncated', top, epoch} end
if since == top then return {'ok', top, epoch} end
local entries = redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+', 'COUNT', top - since)
local size, limit = 0, tonumber(ARGV[6])
for _, entry in ipairs(entries) do
  local fields = entry[2]
  for i = 1, #fields - 1, 2 do
    if fields[i] == 'p' then size = size + #fields[i + 1] end
  end
  if size > limit then return {'too_big', top, epoch, {entries[1]}} end
end
return {'ok', top, epoch, entries}
"""
)


class RedisHistory:
    """History for :class:`~netrun_ws.redis.store.RedisStore` (one per store)."""

    def __init__(
        self,
        client: AnyRedis,
        *,
        target: RedisTarget,
        layout: KeyLayout,
        publish_command: str = "PUBLISH",
        timeout: float,
        session_ttl: float,
        config: HistoryConfig,
        pipeline: PipelinedConnection | None = None,
    ) -> None:
        self._client = client
        #: One Redis (not a cluster): publishes share the pipelined publish connection.
        self._pipeline = pipeline
        self._target = target
        self._layout = layout
        self._publish_command = publish_command
        self._timeout = timeout
        self._session_ttl = max(1, round(session_ttl))
        self._config = config
        #: channel -> the publish script call's packed arguments that depend only on the
        #: channel and the config (see :meth:`_packed_publish`).
        self._publish_parts: dict[str, tuple[bytes, bytes, bytes]] = {}
        self._publish = client.register_script(_PUBLISH)
        self._top = client.register_script(_TOP)
        self._since = client.register_script(_SINCE)

    @property
    def config(self) -> HistoryConfig:
        return self._config

    @config.setter
    def config(self, config: HistoryConfig) -> None:
        self._config = config
        self._publish_parts.clear()  # they hold sizes and ttls of the config

    def _keys(self, channel: str) -> list[str]:
        meta = self._layout.history_base(channel)
        return [meta, meta + ":s"]

    def _meta_ttl(self, channel: str) -> int:
        return max(self._session_ttl, round(self._ttl(channel)))

    def _size(self, channel: str) -> int:
        config = self.config
        return config.rooms_size if channel.startswith("room:") else config.users_size

    def _ttl(self, channel: str) -> float:
        config = self.config
        return config.rooms_ttl if channel.startswith("room:") else config.users_ttl

    async def _run(self, script: AsyncScript, keys: list[str], args: list[Any], what: str) -> Any:
        return await bounded(
            script(keys=keys, args=args),
            timeout=self._timeout,
            operation=what,
            target=self._target,
        )

    async def publish(self, channel: str, header: bytes, payload: str) -> tuple[Position, int]:
        """Assign the next offset, keep the message and PUBLISH it on the bus with its position
        (one round trip). Returns the position and how many subscribers got it."""
        fresh = new_epoch()
        now = round(time.time() * 1000)
        body = payload.encode("utf-8", "surrogatepass")
        if self._pipeline is None:
            args = self._publish_args(channel, fresh, now, header, body)
            keys = self._keys(channel)
            top, epoch, receivers = await self._run(self._publish, keys, args, "history PUBLISH")
            return Position(int(top), str(epoch)), int(receivers)
        try:
            top, epoch, receivers = await self._pipeline.call_packed(
                "history PUBLISH", self._packed_publish(channel, fresh, now, header, body)
            )
        except NoScriptError:  # Redis restarted or flushed its scripts: load it, run it
            args = self._publish_args(channel, fresh, now, header, body)
            keys = self._keys(channel)
            top, epoch, receivers = await self._run(self._publish, keys, args, "history PUBLISH")
        except ResponseError as exc:
            raise RedisStoreError(
                f"Redis at {self._target.location} failed during history PUBLISH: "
                f"{self._target.scrub(str(exc))[:200]}"
            ) from None
        return fast_records.position(int(top), str(epoch)), int(receivers)

    def _publish_args(
        self, channel: str, epoch: str, now: int, header: bytes, body: bytes
    ) -> list[Any]:
        """The publish script's ARGV (see ``_PUBLISH``)."""
        return [
            epoch,
            self._meta_ttl(channel),
            self._size(channel),
            max(1, round(self._ttl(channel))),
            now,
            header,
            body,
            self._layout.buses[self._layout.group_of(channel)],
            self._publish_command,
        ]

    def _packed_publish(
        self, channel: str, epoch: str, now: int, header: bytes, body: bytes
    ) -> bytes:
        """The EVALSHA of the publish script in RESP, with :meth:`_publish_args`: what depends
        only on the channel and the config (all but the message's own four arguments) is packed
        once per channel, from those same arguments (packing every argument per call cost more
        than the rest of the publish's Python code)."""
        parts = self._publish_parts.get(channel)
        if parts is None:
            if len(self._publish_parts) >= _MAX_PACKED_CHANNELS:
                self._publish_parts.clear()
            keys = self._keys(channel)
            args = self._publish_args(channel, "", 0, b"", b"")  # ARGV 1, 5, 6, 7 vary
            head = ["EVALSHA", self._publish.sha, len(keys), *keys]
            parts = self._publish_parts[channel] = (
                b"*%d\r\n%s" % (len(head) + len(args), _bulks(head)),
                _bulks(args[1:4]),
                _bulks(args[7:]),
            )
        stamp = b"%d" % now
        return b"%s$%d\r\n%s\r\n%s$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n%s" % (
            parts[0],
            len(epoch),
            epoch.encode(),
            parts[1],
            len(stamp),
            stamp,
            len(header),
            header,
            len(body),
            body,
            parts[2],
        )

    async def top(self, channel: str, session_id: str | None = None) -> Position:
        """The channel's top; with ``session_id``, also record it as that session's join."""
        keys = self._keys(channel)
        args: list[Any] = [new_epoch(), self._meta_ttl(channel)]
        if session_id is not None:
            keys.append(self._layout.joins_key(session_id, self._layout.group_of(channel)))
            args += [channel, self._session_ttl]
        top, epoch = await self._run(self._top, keys, args, "history top")
        return Position(int(top), str(epoch))

    async def since(
        self, channel: str, since: Position, max_messages: int, max_bytes: int
    ) -> HistoryRead:
        args: list[Any] = [
            new_epoch(),
            self._meta_ttl(channel),
            since.offset,
            since.epoch,
            max_messages,
            max_bytes,
        ]
        reply = await self._run(self._since, self._keys(channel), args, "history read")
        status, top = str(reply[0]), Position(int(reply[1]), str(reply[2]))
        if status == "truncated":
            return HistoryRead("ok", top, truncated=True)
        if status not in ("ok", "too_big"):
            return HistoryRead(
                "out_of_history" if status == "out_of_history" else "epoch_changed", top
            )
        entries = reply[3] if len(reply) > 3 else []
        if top.offset > since.offset and (
            not entries or _offset(entries[0][0]) != since.offset + 1
        ):
            return HistoryRead("out_of_history", top)  # trimmed, or expired with the stream
        oldest_kept = (time.time() - self._ttl(channel)) * 1000
        if entries and float(_fields(entries[0][1]).get("t", 0)) < oldest_kept:
            return HistoryRead("out_of_history", top)
        if status == "too_big":  # only the first entry came: more bytes than max_bytes
            return HistoryRead("ok", top, truncated=True)
        messages: list[str] = []
        size = 0
        for entry_id, fields in entries:
            values = _fields(fields)
            payload = splice_position(values.get("p", "{}"), channel, _offset(entry_id), top.epoch)
            size += utf8_size(payload)
            if size > max_bytes:
                return HistoryRead("ok", top, truncated=True)
            messages.append(payload)
        if len(messages) != top.offset - since.offset:
            return HistoryRead("out_of_history", top)
        return HistoryRead("ok", top, tuple(messages))

    async def forget_join(self, session_id: str, channel: str) -> None:
        key = self._layout.joins_key(session_id, self._layout.group_of(channel))
        await bounded(
            self._client.hdel(key, channel),
            timeout=self._timeout,
            operation="HDEL history join",
            target=self._target,
        )

    async def session_channels(self, session_id: str) -> dict[str, Position]:
        """Where the session joined its channels: one read per slot group (one on one Redis)."""
        reads = [
            bounded(
                self._client.hgetall(self._layout.joins_key(session_id, group)),
                timeout=self._timeout,
                operation="HGETALL history joins",
                target=self._target,
            )
            for group in range(self._layout.groups)
        ]
        channels: dict[str, Position] = {}
        for found in await asyncio.gather(*reads):
            for channel, value in found.items():
                offset, _, epoch = str(value).partition(" ")
                if offset.isdigit() and epoch:
                    channels[str(channel)] = Position(int(offset), epoch)
        return channels


def _bulks(values: list[Any]) -> bytes:
    """``values`` (str, bytes or int) as RESP bulk strings, as hiredis packs them."""
    packed = []
    for value in values:
        if type(value) is str:
            value = value.encode("utf-8", "surrogatepass")
        elif type(value) is int:
            value = b"%d" % value
        elif type(value) is not bytes:
            raise TypeError(
                f"a Redis argument must be str, bytes or int, not {type(value).__name__}"
            )
        packed.append(b"$%d\r\n%s\r\n" % (len(value), value))
    return b"".join(packed)


def _offset(entry_id: Any) -> int:
    return int(str(entry_id).partition("-")[0])


def _fields(fields: Any) -> dict[str, str]:
    """A stream entry's fields (a flat list or a mapping, depending on the client's parser)."""
    if isinstance(fields, dict):
        return {str(key): str(value) for key, value in fields.items()}
    return {str(fields[i]): str(fields[i + 1]) for i in range(0, len(fields) - 1, 2)}
