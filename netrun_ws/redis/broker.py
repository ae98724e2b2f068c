"""Cross-node delivery over one Redis pub/sub channel, watched by a self-delivery probe.

Every node subscribes to one channel, ``P:bus`` (on Redis Cluster the shard channel ``{P}:bus``,
with SPUBLISH and SSUBSCRIBE on the node that owns its slot, followed when the slot moves).
Publishing an envelope is ONE ``PUBLISH`` for the whole cluster, whatever the number of
recipients; each node decodes it once and hands it to its own ``deliver``; the origin node skips
its own copy (it delivered locally already).

Wire format of a message on ``P:bus``::

    <header> "\\n" <payload>
    header  = JSON array [1, origin_node, kind, target, binary, exclude_users, exclude_connections]
              or, for a message with a history position, the same + [offset, epoch]
    payload = the envelope's payload: UTF-8 text (binary = 0) or raw bytes (binary = 1); for a
              positioned message, the JSON object WITHOUT ``pos``: each node splices it in once

A positioned message is published by the history script (:mod:`netrun_ws.redis.history`) in the
same call that assigned its offset, and every node, the origin included, delivers it from the
subscription: the bus order is the offset order, so delivery order agrees with it everywhere.
The origin's ``publish`` waits (up to about ``probe_timeout``) for its own copy to learn the local
count.

``1`` is the format version; a message of an unknown version or shape is counted as malformed
and dropped. A probe is ``[1, node, "probe", "<monotonic send time>", 0, [], []]`` with an empty
payload: every ``probe_interval`` seconds each node publishes one and must receive it back within
``probe_timeout``. If it does not (the subscription died silently: ``CLIENT KILL TYPE pubsub``, a
paused or restarted Redis, a dropped connection), the node tears its subscription down and
resubscribes with backoff, and reports the window in which messages from other nodes may have
been lost as a :class:`~netrun_ws.store.DeliveryGap` (pub/sub is at-most-once).

While PUBLISH fails, publishing drops the message and counts it (``publish_failures``) instead of
buffering it: one failed PUBLISH marks an outage, during which publishes return at once without
calling Redis, until the next probe is published successfully.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import RedisCluster
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from netrun_ws import fast_records
from netrun_ws.history import ROOM_PREFIX, USER_PREFIX, position_prefix, splice_position
from netrun_ws.reconnection import ReconnectionConfig, ReconnectionManager
from netrun_ws.redis.calls import (
    REDIS_FAILURES,
    AnyRedis,
    OutageLog,
    RedisStoreError,
    RedisTarget,
    bounded,
    describe_failure,
)
from netrun_ws.redis.pipeline import PipelinedConnection
from netrun_ws.store import Deliver, DeliveryGap, Envelope, EnvelopeKind, GapCallback
from netrun_ws.wire import Frame

__all__ = [
    "WIRE_VERSION",
    "RedisBroker",
    "WireMessage",
    "decode_message",
    "encode_envelope",
    "encode_header_prefix",
    "node_url",
]

logger = logging.getLogger(__name__)

#: The first element of every header; a node drops messages of another version.
WIRE_VERSION = 1
_PROBE = "probe"
_KINDS: dict[str, EnvelopeKind] = {
    "user": "user",
    "room": "room",
    "broadcast": "broadcast",
    "revoke": "revoke",
    "revoke_token": "revoke_token",
    "connection": "connection",
}
_MAX_OWN_PENDING = 10000
# Payload text may hold lone surrogates; they cross the wire unchanged.
_TEXT_ERRORS = "surrogatepass"


#: Made once: ``json.dumps`` with options builds an encoder per call (most of a header's cost).
_HEADER_ENCODER = json.JSONEncoder(separators=(",", ":"))
#: ``raw_decode`` on text skips ``json.loads``'s encoding detection and whitespace scans.
_HEADER_DECODER = json.JSONDecoder()
#: A string as JSON text, ASCII only: what the header encoder writes for one.
_json_text: Callable[[str], str] = json.encoder.encode_basestring_ascii
_NO_STRINGS: frozenset[str] = frozenset()
_POSITION_PREFIXES: dict[str, str] = {}
_MAX_POSITION_PREFIXES = 1024
_HEADER_PREFIXES: dict[tuple[str, str, str | None, bool], bytes] = {}
_MAX_HEADER_PREFIXES = 1024


def _header(values: list[Any]) -> bytes:
    return _HEADER_ENCODER.encode(values).encode("ascii")


@dataclass(frozen=True, slots=True)
class WireMessage:
    """A decoded message: an envelope from ``origin``, or its probe (``probe_sent``)."""

    origin: str
    envelope: Envelope | None
    probe_sent: float | None = None


def encode_envelope(origin: str, envelope: Envelope) -> bytes:
    """The bytes PUBLISHed for ``envelope`` sent by node ``origin``."""
    payload = envelope.payload
    body = payload if isinstance(payload, bytes) else payload.encode("utf-8", _TEXT_ERRORS)
    return encode_header_prefix(origin, envelope) + b"]\n" + body


def encode_header_prefix(origin: str, envelope: Envelope) -> bytes:
    """The header of ``envelope`` without its closing ``]`` (the history script appends the
    position there)."""
    binary = isinstance(envelope.payload, bytes)
    if not (envelope.exclude_users or envelope.exclude_connections):
        # Almost every envelope: the same bytes as below, without building an encoder per call,
        # remembered for the last targets (a busy user or room gets many).
        key = (origin, envelope.kind, envelope.target, binary)
        known = _HEADER_PREFIXES.get(key)
        if known is not None:
            return known
        if len(_HEADER_PREFIXES) >= _MAX_HEADER_PREFIXES:
            _HEADER_PREFIXES.clear()
        target = "null" if envelope.target is None else _json_text(envelope.target)
        header = _HEADER_PREFIXES[key] = (
            f"[{WIRE_VERSION},{_json_text(origin)},{_json_text(envelope.kind)},{target},"
            f"{int(binary)},[],[]"
        ).encode("ascii")
        return header
    header = _header(
        [
            WIRE_VERSION,
            origin,
            envelope.kind,
            envelope.target,
            int(binary),
            sorted(envelope.exclude_users),
            sorted(envelope.exclude_connections),
        ]
    )
    return header[:-1]


def encode_probe(origin: str, sent_at: float) -> bytes:
    return _header([WIRE_VERSION, origin, _PROBE, repr(sent_at), 0, [], []]) + b"\n"


def decode_message(data: bytes) -> WireMessage:
    """Decode a message of :func:`encode_envelope` or a probe; ValueError says what is wrong."""
    origin, envelope, probe_sent = _decode(data)
    return WireMessage(origin, envelope, probe_sent)


def _decode(data: bytes) -> tuple[str, Envelope | None, float | None]:
    """:func:`decode_message`'s origin, envelope and probe time, without the ``WireMessage``
    (each bus message is decoded here on every node: the checks are written for speed)."""
    line, newline, body = data.partition(b"\n")
    if not newline:
        raise ValueError("no header line")
    try:
        header = _header_value(line)
    except ValueError:
        raise ValueError("the header is not JSON") from None
    size = len(header) if type(header) is list else 0
    if size == 9:
        version, origin, kind, target, binary, exclude_users, exclude_connections, offset, epoch = (
            header
        )
    elif size == 7:
        version, origin, kind, target, binary, exclude_users, exclude_connections = header
    else:
        raise ValueError("the header is not a 7- or 9-element array")
    if version != WIRE_VERSION:
        raise ValueError(f"wire format version {version!r:.20} (this node speaks {WIRE_VERSION})")
    if type(origin) is not str or not origin:
        raise ValueError("no origin node")
    if kind == _PROBE:
        if type(target) is not str:
            raise ValueError("a probe without its send time")
        return origin, None, float(target)
    envelope_kind = _KINDS.get(kind) if type(kind) is str else None
    if envelope_kind is None:
        raise ValueError(f"unknown kind {kind!r:.40}")
    if target is not None and type(target) is not str:
        raise ValueError("the target is neither a string nor null")
    if binary not in (0, 1):
        raise ValueError("the binary flag is neither 0 nor 1")
    # Almost always nobody is excluded: an empty list.
    users = _NO_STRINGS if type(exclude_users) is list and not exclude_users else None
    if users is None:
        users = _strings(exclude_users)
    connections = (
        _NO_STRINGS if type(exclude_connections) is list and not exclude_connections else None
    )
    if connections is None:
        connections = _strings(exclude_connections)
    payload: Frame = body if binary else body.decode("utf-8", _TEXT_ERRORS)
    if size == 7:
        return (
            origin,
            fast_records.envelope(envelope_kind, target, payload, users, connections),
            None,
        )
    if type(offset) is not int or offset < 1:  # a JSON true is a bool, not an int
        raise ValueError("the position's offset is not a positive integer")
    if type(epoch) is not str or not epoch or type(payload) is not str:
        raise ValueError("a position without an epoch, or on a binary payload")
    if envelope_kind not in ("room", "user") or target is None or not payload.startswith("{"):
        raise ValueError("a position on a message that is not a room or user JSON object")
    channel = (ROOM_PREFIX if envelope_kind == "room" else USER_PREFIX) + target
    prefix = _POSITION_PREFIXES.get(channel) or _position_prefix(channel)
    payload = splice_position(payload, channel, offset, epoch, prefix)
    position = fast_records.position(offset, epoch)
    return (
        origin,
        fast_records.envelope(envelope_kind, target, payload, users, connections, position),
        None,
    )


def _header_value(header: bytes) -> Any:
    """The header's JSON value: what ``json.loads`` gives, without its encoding detection and
    whitespace scans for the headers nodes write (plain ASCII, no spaces)."""
    try:
        text = header.decode()
        value, end = _HEADER_DECODER.raw_decode(text)
    except ValueError:  # a decode error too
        return json.loads(header)  # what it accepts (and how it refuses) stays the reference
    return value if end == len(text) else json.loads(header)


def node_url(url: str, host: str, port: int) -> str:
    """``url`` (scheme, credentials, options) pointed at ``host:port``: a Redis Cluster node."""
    parts = urllib.parse.urlsplit(url)
    credentials, _, _ = parts.netloc.rpartition("@")
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    netloc = f"{credentials}@{address}" if credentials else address
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, path=""))


def _position_prefix(channel: str) -> str:
    """:func:`position_prefix`, remembered for the channels seen last (a JSON encode saved on
    most messages: a busy channel has many)."""
    prefix = _POSITION_PREFIXES.get(channel)
    if prefix is None:
        if len(_POSITION_PREFIXES) >= _MAX_POSITION_PREFIXES:
            _POSITION_PREFIXES.clear()
        prefix = _POSITION_PREFIXES[channel] = position_prefix(channel)
    return prefix


def _strings(value: object) -> frozenset[str]:
    if value == [] and type(value) is list:  # almost always: nobody excluded
        return _NO_STRINGS
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("an exclusion list is not a list of strings")
    return frozenset(value)


def _clock_text(unix_time: float) -> str:
    moment = datetime.datetime.fromtimestamp(unix_time, datetime.UTC)
    return moment.isoformat(timespec="milliseconds")


class _Throttle:
    """Allows one log line per ``seconds``; counts what it held back."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._next = 0.0
        self.suppressed = 0

    def allow(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            self.suppressed += 1
            return False
        self._next = now + self._seconds
        return True

    def take_suppressed(self) -> int:
        count, self.suppressed = self.suppressed, 0
        return count


async def _close(connection: AbstractConnection, timeout: float) -> None:
    with contextlib.suppress(Exception):  # best effort: the connection is being abandoned
        await asyncio.wait_for(connection.disconnect(nowait=True), timeout)


class RedisBroker:
    """Publishes envelopes to the cluster channel and delivers other nodes' envelopes here."""

    def __init__(
        self,
        client: AnyRedis,
        *,
        target: RedisTarget,
        channel: str,
        cluster: bool = False,
        node_id: str,
        probe_interval: float,
        probe_timeout: float,
        timeout: float,
        reconnect: ReconnectionConfig,
        pipeline: PipelinedConnection | None = None,
    ) -> None:
        self._client = client
        #: One Redis (not a cluster): PUBLISHes go on the pipelined publish connection.
        self._pipeline = pipeline
        self._target = target
        self._channel = channel
        self._node_id = node_id
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self._timeout = timeout
        self._reconnector = ReconnectionManager(reconnect)
        self._cluster = cluster
        # Redis Cluster: the channel is a shard channel (SPUBLISH/SSUBSCRIBE), served by the node
        # that owns its slot; classic PUBLISH would be copied to every node of the cluster.
        self._subscribe_command = "SSUBSCRIBE" if cluster else "SUBSCRIBE"
        self._factory = self._subscription_pool(target.url)
        own = _header([WIRE_VERSION, node_id])[:-1] + b","
        self._own_prefix = own
        self._own_probe_prefix = own + _header([_PROBE])[1:-1]
        self._deliver: Deliver | None = None
        self._on_gap: GapCallback | None = None
        self._connection: AbstractConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._probe_send: asyncio.Task[None] | None = None
        self._next_probe = 0.0
        self._probe_sent_at = 0.0
        self._first_probe = asyncio.Event()
        self._tripped = asyncio.Event()
        self._trip_reason = ""
        self._subscribed = False
        self._subscribed_at = 0.0  # monotonic
        self._last_probe: float | None = None  # monotonic time our probe came back
        self._probe_rtt: float | None = None
        self._last_good = 0.0  # unix time the subscription last proved to work
        self._lost_at: float | None = None
        self._lost_reason = ""
        self._publish_outage = OutageLog(
            logger, f"cross-node PUBLISH to Redis at {target.location}"
        )
        self._malformed_log = _Throttle(10.0)
        self._delivery_log = _Throttle(10.0)
        self.received = 0
        self.publish_failures = 0
        self.gaps = 0
        self.resubscribes = 0
        self.malformed = 0
        self.delivery_errors = 0
        #: (kind, target, offset, epoch) of this node's positioned publishes -> a future for the
        #: local delivery count, resolved when the message comes back through the subscription
        #: (or with 0 once ``probe_timeout`` passed: see :meth:`own_delivery`), and its deadline.
        self._own: dict[tuple[str, str, int, str], tuple[asyncio.Future[int], float]] = {}

    @property
    def subscribed(self) -> bool:
        return self._subscribed

    # ---------------------------------------------------------------- lifecycle

    async def start(self, deliver: Deliver, on_gap: GapCallback) -> None:
        """Subscribe and wait for this node's first probe to come back (RedisStoreError if not)."""
        self._deliver, self._on_gap = deliver, on_gap
        connection = await self._subscribe()
        self._became_subscribed(connection)
        self._tasks = [
            asyncio.create_task(self._subscription_loop(connection), name="redis-subscriber"),
            asyncio.create_task(self._probe_loop(), name="redis-probe"),
        ]
        try:
            await asyncio.wait_for(self._first_probe.wait(), self._probe_timeout)
        except TimeoutError:
            await self.stop()
            raise RedisStoreError(
                f"Redis at {self._target.location} accepted the subscription to "
                f"{self._channel} but did not deliver this node's probe within "
                f"{self._probe_timeout:g}s"
            ) from None

    async def stop(self) -> None:
        self._reconnector.stop()
        self._give_up_all_own()
        tasks = [*self._tasks, *([self._probe_send] if self._probe_send else [])]
        self._tasks, self._probe_send = [], None
        for task in tasks:
            task.cancel()
        if tasks:  # a task stuck in a hung call is left behind, not awaited forever
            await asyncio.wait(tasks, timeout=self._timeout)
        if self._connection is not None:
            await _close(self._connection, self._timeout)
            self._connection = None
        self._subscribed = False
        with contextlib.suppress(*REDIS_FAILURES):
            await asyncio.wait_for(self._factory.disconnect(), self._timeout)

    def healthy(self) -> bool:
        """Subscribed, and our last probe came back through this subscription recently."""
        probe = self._last_probe
        return (
            self._subscribed
            and probe is not None
            and probe >= self._subscribed_at
            and time.monotonic() - probe <= self._probe_timeout
        )

    # ---------------------------------------------------------------- publishing

    async def send(self, envelope: Envelope) -> int:
        """PUBLISH ``envelope`` once; returns how many other nodes got it (0 if it failed)."""
        if self._publish_outage.in_outage:
            self.publish_failures += 1  # dropped: nothing is buffered while Redis is away
            self._publish_outage.failed("")
            return 0
        message = encode_envelope(self._node_id, envelope)
        try:
            receivers = await self._publish(message, "PUBLISH")
        except RedisStoreError as exc:
            self.publish_failures += 1
            self._publish_outage.failed(str(exc))
            return 0
        return max(0, receivers - (1 if self._subscribed else 0))

    @property
    def in_publish_outage(self) -> bool:
        """True while publishes are dropped (Redis did not take the last one)."""
        return self._publish_outage.in_outage

    def publish_failed(self, error: str) -> None:
        """A publish made elsewhere (the history script) failed: count it, mark the outage."""
        self.publish_failures += 1
        self._publish_outage.failed(error)

    async def _publish(self, message: bytes, operation: str) -> int:
        if self._pipeline is not None:
            try:
                return int(await self._pipeline.call(operation, "PUBLISH", self._channel, message))
            except ResponseError as exc:
                cause = self._target.scrub(str(exc))[:200]
                raise RedisStoreError(
                    f"Redis at {self._target.location} failed during {operation}: {cause}"
                ) from None
        client = self._client
        sent = (
            client.spublish(self._channel, message)
            if isinstance(client, RedisCluster)
            else client.publish(self._channel, message)
        )
        receivers = await bounded(
            sent,
            timeout=self._timeout,
            operation=operation,
            target=self._target,
        )
        return int(receivers)

    # ---------------------------------------------------------------- probing

    async def _probe_loop(self) -> None:
        tick = min(self._probe_interval, self._probe_timeout) / 4
        while True:
            now = time.monotonic()
            idle = self._probe_send is None or self._probe_send.done()
            if now >= self._next_probe and idle:
                self._next_probe = now + self._probe_interval
                self._probe_sent_at = now
                self._probe_send = asyncio.create_task(self._send_probe(), name="redis-probe-send")
            elif not idle and now - self._probe_sent_at > self._probe_timeout:
                # Redis takes PUBLISHes but does not answer (paused?): stop making callers wait.
                self._publish_outage.failed("a probe PUBLISH is unanswered", count=False)
            self._check_subscription(now)
            self._expire_own(asyncio.get_running_loop().time())
            await asyncio.sleep(tick)

    async def _send_probe(self) -> None:
        try:
            await self._publish(encode_probe(self._node_id, time.monotonic()), "PUBLISH probe")
        except RedisStoreError as exc:
            self._publish_outage.failed(str(exc), count=False)
        else:
            self._publish_outage.recovered()

    def _check_subscription(self, now: float) -> None:
        if not self._subscribed or self._tripped.is_set():
            return
        silent = now - max(self._subscribed_at, self._last_probe or 0.0)
        if silent > self._probe_timeout:
            self._trip_reason = f"no probe came back through the subscription for {silent:.1f}s"
            self._tripped.set()

    def _probe_returned(self, data: bytes) -> None:
        now = time.monotonic()
        try:
            sent = decode_message(data).probe_sent
        except ValueError:
            sent = None
        if sent is not None:
            self._probe_rtt = now - sent
        self._last_probe = now
        self._last_good = time.time()
        self._first_probe.set()

    # ---------------------------------------------------------------- subscribing

    def _subscription_pool(self, url: str) -> ConnectionPool:
        # A dedicated connection per subscription, with no hidden retry: resubscribing is ours,
        # so that a lost subscription is always noticed and reported as a gap.
        return ConnectionPool.from_url(
            url,
            decode_responses=False,
            protocol=2,  # messages arrive as plain replies (RESP3 would route them as pushes)
            socket_connect_timeout=self._timeout,
            socket_timeout=None,  # a subscriber waits for messages indefinitely
            retry=Retry(NoBackoff(), 0),
        )

    def _shard_pool(self) -> ConnectionPool:
        """Redis Cluster: a pool for the node that owns the channel's slot, as the command
        client last saw the slot map (a MOVED on a probe SPUBLISH refreshes it, so a
        resubscribe after a failover or a resharding finds the new owner)."""
        assert isinstance(self._client, RedisCluster)
        node = self._client.get_node_from_key(self._channel)
        if node is None:
            raise RedisError(f"no Redis Cluster node serves the slot of {self._channel}")
        url = node_url(self._target.url, node.host, int(node.port))
        if self._factory.connection_kwargs.get("host") != node.host or (
            self._factory.connection_kwargs.get("port") != int(node.port)
        ):
            self._factory = self._subscription_pool(url)
        return self._factory

    async def _subscribe(self) -> AbstractConnection:
        factory = self._shard_pool() if self._cluster else self._factory
        connection: AbstractConnection = factory.make_connection()  # type: ignore[no-untyped-call]
        try:
            await bounded(
                self._handshake(connection),
                timeout=self._timeout,
                operation=f"{self._subscribe_command} {self._channel}",
                target=self._target,
            )
        except BaseException:
            await _close(connection, self._timeout)
            raise
        return connection

    async def _handshake(self, connection: AbstractConnection) -> None:
        await connection.connect()  # type: ignore[no-untyped-call]
        await connection.send_command(self._subscribe_command, self._channel)
        reply = await connection.read_response()
        expected = self._subscribe_command.lower().encode()
        if not (isinstance(reply, list) and reply and reply[0] == expected):
            raise RedisError(f"unexpected reply to {self._subscribe_command}: {reply!r:.80}")

    def _became_subscribed(self, connection: AbstractConnection) -> None:
        self._connection = connection
        self._subscribed = True
        self._subscribed_at = time.monotonic()
        self._last_good = time.time()
        self._next_probe = 0.0  # probe the new subscription at once

    async def _subscription_loop(self, connection: AbstractConnection) -> None:
        current: AbstractConnection | None = connection
        try:
            while current is not None:
                reason = await self._listen(current)
                self._lost(reason)
                await _close(current, self._timeout)
                current = None
                if not await self._reconnector.reconnect(
                    self._resubscribe, on_failure=self._resubscribe_failed
                ):
                    return  # stopped
                current = self._connection
                await self._restored()
        finally:
            if current is not None:
                await _close(current, self._timeout)

    async def _listen(self, connection: AbstractConnection) -> str:
        """Read messages until the subscription fails or the probe watchdog trips; say why."""
        self._tripped.clear()
        reader = asyncio.create_task(self._read(connection), name="redis-subscriber-read")
        trip = asyncio.create_task(self._tripped.wait())
        try:
            done, _ = await asyncio.wait({reader, trip}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, trip):
                task.cancel()
            await asyncio.gather(reader, trip, return_exceptions=True)
        if reader in done and not reader.cancelled():
            error = reader.exception()
            if error is not None and not isinstance(error, REDIS_FAILURES):
                logger.error("the Redis subscriber failed unexpectedly", exc_info=error)
            cause = self._target.scrub(describe_failure(error)) if error else "closed"
            return f"subscription connection failed: {cause}"
        return self._trip_reason

    async def _read(self, connection: AbstractConnection) -> None:
        while True:
            reply = await connection.read_response()
            if isinstance(reply, list) and len(reply) == 3:
                if reply[0] in (b"message", b"smessage"):
                    await self._handle(reply[2])
                elif reply[0] == b"sunsubscribe":
                    # Redis Cluster moved the channel's slot (resharding, failover): resubscribe
                    # on its new owner; what was published meanwhile is reported as a gap.
                    raise RedisError("the shard channel's slot moved to another node")

    def own_delivery(self, key: tuple[str, str, int, str]) -> asyncio.Future[int]:
        """The future of this node's own positioned message ``key``'s local delivery count.

        It gets 0 if the copy has not come back within ``probe_timeout`` (the probe loop looks
        every quarter of it: one sweep instead of a timer per message), when the subscription
        is lost, and when the broker stops."""
        entry = self._own.get(key)
        if entry is not None:
            return entry[0]
        if len(self._own) >= _MAX_OWN_PENDING:  # late copies nobody waits for any more
            self._give_up_own(next(iter(self._own)))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._own[key] = (future, loop.time() + self._probe_timeout)
        return future

    def forget_own(self, key: tuple[str, str, int, str]) -> None:
        self._own.pop(key, None)

    def _give_up_own(self, key: tuple[str, str, int, str]) -> None:
        future, _ = self._own.pop(key)
        if not future.done():
            future.set_result(0)

    def _expire_own(self, now: float) -> None:
        """Give up the own copies past their deadline (the oldest come first)."""
        expired = []
        for key, (_, deadline) in self._own.items():
            if deadline > now:
                break
            expired.append(key)
        for key in expired:
            self._give_up_own(key)

    def _give_up_all_own(self) -> None:
        for key in list(self._own):
            self._give_up_own(key)

    async def _handle(self, data: bytes) -> None:
        own = data.startswith(self._own_prefix)
        if own:
            if data.startswith(self._own_probe_prefix):
                self._probe_returned(data)
                return
            # A plain header ends with its exclusion list (`]]`), a positioned one with the
            # epoch (`"]`): a plain envelope of ours was delivered locally when published.
            if not data[: data.find(b"\n")].endswith(b'"]'):
                return
        try:
            origin, envelope, _ = _decode(data)
        except ValueError as exc:
            self.malformed += 1
            if self._malformed_log.allow():
                logger.warning(
                    "dropped a malformed message on %s: %s (%d more not logged)",
                    self._channel,
                    exc,
                    self._malformed_log.take_suppressed(),
                )
            return
        if envelope is None or self._deliver is None:
            return  # another node's probe
        if not own:
            self.received += 1
        try:
            local = await self._deliver(envelope)
            pos = envelope.pos
            if own and pos is not None:
                key = (envelope.kind, envelope.target or "", pos.offset, pos.epoch)
                entry = self._own.get(key)  # the publisher's, unless the copy came first
                future = entry[0] if entry is not None else self.own_delivery(key)
                if not future.done():
                    future.set_result(local)
        except Exception:
            self.delivery_errors += 1
            if self._delivery_log.allow():
                logger.exception(
                    "delivering an envelope from node %s failed (%d more failures not logged)",
                    origin,
                    self._delivery_log.take_suppressed(),
                )

    def _lost(self, reason: str) -> None:
        self._subscribed = False
        self._connection = None
        self._give_up_all_own()  # their copies will not come back through this subscription
        if self._lost_at is None:
            self._lost_at = self._last_good
            self._lost_reason = reason
        logger.warning(
            "pub/sub subscription to %s on Redis at %s lost (%s); messages from other nodes "
            "are not received until it is back; resubscribing with backoff",
            self._channel,
            self._target.location,
            reason,
        )

    async def _resubscribe(self) -> bool:
        self._connection = await self._subscribe()
        return True

    def _resubscribe_failed(self, attempt: int, error: BaseException) -> None:
        logger.debug("resubscribe attempt %d failed: %s", attempt, error)

    async def _restored(self) -> None:
        assert self._connection is not None
        self._became_subscribed(self._connection)
        ended = time.time()
        started = self._lost_at if self._lost_at is not None else ended
        gap = DeliveryGap(started_at=started, ended_at=ended, reason=self._lost_reason)
        self._lost_at = None
        self.gaps += 1
        self.resubscribes += 1
        logger.warning(
            "resubscribed to %s on Redis at %s; messages from other nodes published between "
            "%s and %s (%.1fs) may have been lost (%s)",
            self._channel,
            self._target.location,
            _clock_text(gap.started_at),
            _clock_text(gap.ended_at),
            gap.ended_at - gap.started_at,
            gap.reason,
        )
        if self._on_gap is not None:
            try:
                await self._on_gap(gap)
            except Exception:
                logger.exception("the delivery-gap callback failed")

    # ---------------------------------------------------------------- stats

    def stats(self) -> dict[str, Any]:
        probe = self._last_probe
        rtt = self._probe_rtt
        return {
            "channel": self._channel,
            "subscribed": self._subscribed,
            "last_probe_age": None if probe is None else time.monotonic() - probe,
            "probe_rtt_ms": None if rtt is None else rtt * 1000,
            "received": self.received,
            "publish_failures": self.publish_failures,
            "publishing": not self._publish_outage.in_outage,
            "gaps": self.gaps,
            "resubscribes": self.resubscribes,
            "resubscribe_attempts": self._reconnector.total_attempts,
            "malformed": self.malformed,
            "delivery_errors": self.delivery_errors,
        }
