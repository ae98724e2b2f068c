"""Cross-node delivery over Redis pub/sub bus channels, watched by a self-delivery probe.

One Redis: every node subscribes to one channel, ``P:bus``. Redis Cluster: one shard channel
per slot group (:mod:`netrun_ws.redis.layout`), ``{P:<g>}:bus``; a room's or user's messages go
on its group's channel, the others (broadcasts, revocations, messages to one connection) on
group 0's, with SPUBLISH; every node SSUBSCRIBEs all of them, on one connection per master that
owns some (the cluster client's slot map says which). Publishing an envelope is ONE ``PUBLISH``
for the whole cluster, whatever the number of recipients; each node decodes it once and hands it
to its own ``deliver``; the origin node skips its own copy (it delivered locally already).

Wire format of a message on a bus channel::

    <header> "\\n" <payload>
    header  = JSON array [1, origin_node, kind, target, binary, exclude_users, exclude_connections]
              or, for a message with a history position, the same + [offset, epoch]
    payload = the envelope's payload: UTF-8 text (binary = 0) or raw bytes (binary = 1); for a
              positioned message, the JSON object WITHOUT ``pos``: each node splices it in once

A positioned message is published by the history script (:mod:`netrun_ws.redis.history`) in the
same call that assigned its offset, and every node, the origin included, delivers it from the
subscription: the bus order is the offset order, so delivery order agrees with it everywhere.
The origin's ``publish`` waits (up to about ``probe_timeout``) for its own copy to learn the local
count, unless it has no recipient on this node (:meth:`RedisBroker.skip_own`: the copy is then
delivered as any other, and nobody waits for it).

``1`` is the format version; a message of an unknown version or shape is counted as malformed
and dropped. A probe is ``[1, node, "probe", "<monotonic send time>", 0, [], []]`` with an empty
payload: every ``probe_interval`` seconds each node publishes one per subscription connection (on
the group of that connection probed longest ago, so each group in turn) and must receive it back
within ``probe_timeout``. If a connection's probes stop coming back (the subscription died
silently: ``CLIENT KILL TYPE pubsub``, a paused or restarted Redis, a dropped connection), the
node closes it and resubscribes its groups with backoff; if one group's probe does not come back
while the connection's others do, or Redis unsubscribes a group (``sunsubscribe``: its slot moved
to another master), that group alone is resubscribed, on its slot's owner. Either way the window
in which messages from other nodes may have been lost is reported as one
:class:`~netrun_ws.store.DeliveryGap` per resubscription (pub/sub is at-most-once); the other
groups keep flowing.

While PUBLISH fails, publishing drops the message and counts it (``publish_failures``) instead of
buffering it: one failed PUBLISH marks an outage, during which publishes return at once without
calling Redis, until the next probe is published successfully. On a cluster the outage is one
for all groups: a master that fails its PUBLISHes pauses publishing to every group until a probe
goes through again (a failed master's groups are not told apart from the others' yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import math
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
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
#: What a failed subscription attempt raises (it is retried, not propagated).
_ATTACH_FAILURES: tuple[type[BaseException], ...] = (*REDIS_FAILURES, RedisStoreError)
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


@dataclass(eq=False)
class _Link:
    """One subscriber connection to one Redis node (one Redis: the only one), carrying the bus
    groups whose channels that node serves."""

    address: tuple[str, int] | None  # a cluster node's host and port; None on one Redis
    connection: AbstractConnection
    opened_at: float  # monotonic
    groups: set[int] = field(default_factory=set)
    #: (S)SUBSCRIBEs sent and not confirmed yet, in send order (an error reply is the oldest's).
    confirming: dict[bytes, asyncio.Future[None]] = field(default_factory=dict)
    #: Channels this node unsubscribed on purpose: their ``sunsubscribe`` is not a slot move.
    unsubscribing: set[bytes] = field(default_factory=set)
    reader: asyncio.Task[None] | None = None
    last_probe: float | None = None  # monotonic time a probe came back through it
    dropped: bool = False


@dataclass(eq=False)
class _Group:
    """One bus channel (one slot group on Redis Cluster) and how this node receives it."""

    index: int
    channel: str
    name: bytes
    link: _Link | None = None
    subscribed_at: float = 0.0  # monotonic
    probe_sent: float | None = None  # monotonic send time of its last probe
    probe_pending: float | None = None  # ... while that probe has not come back
    last_good: float = 0.0  # unix time it last proved to work
    lost_at: float | None = None  # unix: the start of the window to report as a gap
    lost_reason: str = ""
    attach_error: str = ""  # why the last attempt to subscribe it failed


class RedisBroker:
    """Publishes envelopes on the bus channels and delivers other nodes' envelopes here."""

    def __init__(
        self,
        client: AnyRedis,
        *,
        target: RedisTarget,
        buses: Sequence[str],
        cluster: bool = False,
        node_id: str,
        probe_interval: float,
        probe_timeout: float,
        timeout: float,
        reconnect: ReconnectionConfig,
        pipeline: PipelinedConnection | None = None,
    ) -> None:
        if not buses:
            raise ValueError("the broker needs at least one bus channel")
        self._client = client
        #: One Redis (not a cluster): PUBLISHes go on the pipelined publish connection.
        self._pipeline = pipeline
        self._target = target
        #: Group 0's bus: the one channel on one Redis; on a cluster it carries the envelopes
        #: that have no room or user channel.
        self._channel = buses[0]
        self._groups = [_Group(index, bus, bus.encode()) for index, bus in enumerate(buses)]
        self._by_name = {group.name: group for group in self._groups}
        self._node_id = node_id
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self._timeout = timeout
        self._reconnector = ReconnectionManager(reconnect)
        self._cluster = cluster
        # Redis Cluster: the channel is a shard channel (SPUBLISH/SSUBSCRIBE), served by the node
        # that owns its slot; classic PUBLISH would be copied to every node of the cluster.
        self._subscribe_command = "SSUBSCRIBE" if cluster else "SUBSCRIBE"
        self._unsubscribe_command = "SUNSUBSCRIBE" if cluster else "UNSUBSCRIBE"
        #: A subscription connection factory per Redis node (one Redis: the URL's).
        self._pools: dict[tuple[str, int] | None, ConnectionPool] = {}
        self._links: dict[tuple[str, int] | None, _Link] = {}
        own = _header([WIRE_VERSION, node_id])[:-1] + b","
        self._own_prefix = own
        self._own_probe_prefix = own + _header([_PROBE])[1:-1]
        self._deliver: Deliver | None = None
        self._on_gap: GapCallback | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._probe_send: asyncio.Task[None] | None = None
        self._next_probe = 0.0
        self._probe_sent_at = 0.0
        #: Probes in flight: send time -> the group it was sent on.
        self._probes: dict[float, _Group] = {}
        self._all_probed = asyncio.Event()
        self._changed = asyncio.Event()  # a group was lost: the supervisor resubscribes it
        self._last_probe: float | None = None  # monotonic time our probe came back
        self._probe_rtt: float | None = None
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
        #: None instead of a future: nobody waits for that copy (:meth:`skip_own`); its arrival
        #: removes the entry.
        self._own: dict[tuple[str, str, int, str], tuple[asyncio.Future[int] | None, float]] = {}

    @property
    def subscribed(self) -> bool:
        """Every bus channel is subscribed."""
        return all(group.link is not None for group in self._groups)

    def receiving(self, group: int) -> bool:
        """Group ``group``'s bus channel is subscribed (its messages come back here)."""
        return self._groups[group].link is not None

    # ---------------------------------------------------------------- lifecycle

    async def start(self, deliver: Deliver, on_gap: GapCallback) -> None:
        """Subscribe every bus channel and wait for this node's first probe to come back
        through each subscription connection (RedisStoreError if not)."""
        self._deliver, self._on_gap = deliver, on_gap
        try:
            missing = await self._attach([group for group in self._groups if group.link is None])
            if missing:
                raise RedisStoreError(
                    f"Redis at {self._target.location} did not take the subscription to "
                    f"{missing[0].channel}: {missing[0].attach_error}"
                )
            self._tasks = [
                asyncio.create_task(self._supervise(), name="redis-subscriber"),
                asyncio.create_task(self._probe_loop(), name="redis-probe"),
            ]
            await asyncio.wait_for(self._all_probed.wait(), self._probe_timeout)
        except TimeoutError:
            await self.stop()
            raise RedisStoreError(
                f"Redis at {self._target.location} accepted the subscription to "
                f"{self._channel} but did not deliver this node's probe within "
                f"{self._probe_timeout:g}s"
            ) from None
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        self._reconnector.stop()
        self._give_up_all_own()
        tasks = [*self._tasks, *([self._probe_send] if self._probe_send else [])]
        self._tasks, self._probe_send = [], None
        links = list(self._links.values())
        self._links.clear()
        for group in self._groups:
            group.link = None
        tasks += [link.reader for link in links if link.reader is not None]
        for task in tasks:
            task.cancel()
        if tasks:  # a task stuck in a hung call is left behind, not awaited forever
            await asyncio.wait(tasks, timeout=self._timeout)
        for link in links:
            link.dropped = True
            await _close(link.connection, self._timeout)
        if self._closing:
            await asyncio.wait(self._closing, timeout=self._timeout)
        for pool in self._pools.values():
            with contextlib.suppress(*REDIS_FAILURES):
                await asyncio.wait_for(pool.disconnect(), self._timeout)

    def healthy(self) -> bool:
        """Every channel subscribed, and our last probe came back through each subscription
        connection recently."""
        if not self.subscribed:
            return False
        now = time.monotonic()
        for link in self._links.values():
            probe = link.last_probe
            if probe is None or probe < link.opened_at or now - probe > self._probe_timeout:
                return False
        return True

    # ---------------------------------------------------------------- publishing

    async def send(self, envelope: Envelope, group: int = 0) -> int:
        """PUBLISH ``envelope`` once on group ``group``'s bus; returns how many other nodes got
        it (0 if it failed)."""
        if self._publish_outage.in_outage:
            self.publish_failures += 1  # dropped: nothing is buffered while Redis is away
            self._publish_outage.failed("")
            return 0
        message = encode_envelope(self._node_id, envelope)
        try:
            bus = self._groups[group]
            receivers = await self._publish(message, "PUBLISH", bus.channel)
        except RedisStoreError as exc:
            self.publish_failures += 1
            self._publish_outage.failed(str(exc))
            return 0
        return max(0, receivers - (0 if bus.link is None else 1))

    @property
    def in_publish_outage(self) -> bool:
        """True while publishes are dropped (Redis did not take the last one)."""
        return self._publish_outage.in_outage

    def publish_failed(self, error: str) -> None:
        """A publish made elsewhere (the history script) failed: count it, mark the outage."""
        self.publish_failures += 1
        self._publish_outage.failed(error)

    async def _publish(self, message: bytes, operation: str, bus: str) -> int:
        if self._pipeline is not None:
            try:
                return int(await self._pipeline.call(operation, "PUBLISH", bus, message))
            except ResponseError as exc:
                cause = self._target.scrub(str(exc))[:200]
                raise RedisStoreError(
                    f"Redis at {self._target.location} failed during {operation}: {cause}"
                ) from None
        client = self._client
        sent = (
            client.spublish(bus, message)
            if isinstance(client, RedisCluster)
            else client.publish(bus, message)
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
                self._probe_send = asyncio.create_task(self._send_probes(), name="redis-probe-send")
            elif not idle and now - self._probe_sent_at > self._probe_timeout:
                # Redis takes PUBLISHes but does not answer (paused?): stop making callers wait.
                self._publish_outage.failed("a probe PUBLISH is unanswered", count=False)
            self._check_subscriptions(now)
            self._expire_own(asyncio.get_running_loop().time())
            await asyncio.sleep(tick)

    async def _send_probes(self) -> None:
        """One probe per subscription connection, on the group of it probed longest ago: each
        connection is proved every ``probe_interval``, each group in turn."""
        now = time.monotonic()
        for sent in [sent for sent in self._probes if now - sent > 2 * self._probe_timeout]:
            del self._probes[sent]
        # Lost groups too: a probe PUBLISH that works again ends a publish outage, and on a
        # cluster its MOVED refreshes the slot map before the group is resubscribed.
        chosen = [group for group in self._groups if group.link is None]
        for link in list(self._links.values()):
            groups = [self._groups[index] for index in link.groups]
            if groups:
                chosen.append(min(groups, key=lambda group: group.probe_sent or -math.inf))
        failure: str | None = None
        if len(chosen) == 1:  # one Redis: no task per probe
            outcomes: list[object] = []
            try:
                await self._send_probe(chosen[0])
            except RedisStoreError as exc:
                outcomes.append(exc)
        else:
            outcomes = await asyncio.gather(
                *(self._send_probe(group) for group in chosen), return_exceptions=True
            )
        for outcome in outcomes:
            if isinstance(outcome, RedisStoreError):
                failure = str(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        if failure is not None:
            self._publish_outage.failed(failure, count=False)
        elif chosen:
            self._publish_outage.recovered()

    async def _send_probe(self, group: _Group) -> None:
        sent = time.monotonic()
        while sent in self._probes:  # a coarse clock: every probe needs its own send time
            sent = math.nextafter(sent, math.inf)
        self._probes[sent] = group
        group.probe_sent = sent
        if group.probe_pending is None:
            group.probe_pending = sent
        try:
            await self._publish(encode_probe(self._node_id, sent), "PUBLISH probe", group.channel)
        except RedisStoreError:
            # Not published (or not known to be): its absence says nothing of the subscription.
            self._probes.pop(sent, None)
            if group.probe_pending == sent:
                group.probe_pending = None
            raise

    def _check_subscriptions(self, now: float) -> None:
        for link in list(self._links.values()):
            silent = now - max(link.opened_at, link.last_probe or 0.0)
            if silent > self._probe_timeout:
                reason = f"no probe came back through the subscription for {silent:.1f}s"
                self._drop_link(link, reason)
                continue
            for index in list(link.groups):
                group = self._groups[index]
                pending = group.probe_pending
                if pending is not None and now - pending > self._probe_timeout:
                    # The connection works (its other probes come back) but not this channel:
                    # its slot moved without a sunsubscribe reaching us. Resubscribe it alone.
                    self._trip_group(group, f"its probe did not come back for {now - pending:.1f}s")

    def _probe_returned(self, data: bytes) -> None:
        now = time.monotonic()
        try:
            sent = decode_message(data).probe_sent
        except ValueError:
            sent = None
        if sent is None:
            return
        self._probe_rtt = now - sent
        self._last_probe = now
        group = self._probes.pop(sent, None)
        if group is None or group.link is None:
            return  # a probe of a subscription since lost
        group.last_good = time.time()
        if group.probe_pending is not None and group.probe_pending <= sent:
            group.probe_pending = None
        group.link.last_probe = now
        if all(link.last_probe is not None for link in self._links.values()):
            self._all_probed.set()

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

    def _owner(self, group: _Group) -> tuple[str, int] | None:
        """Redis Cluster: the node that owns the group channel's slot, as the command client
        last saw the slot map (a MOVED on a probe SPUBLISH refreshes it, so a resubscribe after
        a failover or a resharding finds the new owner). One Redis: None."""
        if not self._cluster:
            return None
        assert isinstance(self._client, RedisCluster)
        node = self._client.get_node_from_key(group.channel)
        if node is None:
            raise RedisError(f"no Redis Cluster node serves the slot of {group.channel}")
        return node.host, int(node.port)

    async def _link_to(self, address: tuple[str, int] | None) -> _Link:
        """The subscription connection to ``address``, opened (and its reader started) if none."""
        link = self._links.get(address)
        if link is not None:
            return link
        pool = self._pools.get(address)
        if pool is None:
            url = self._target.url if address is None else node_url(self._target.url, *address)
            pool = self._pools[address] = self._subscription_pool(url)
        connection: AbstractConnection = pool.make_connection()  # type: ignore[no-untyped-call]
        try:
            await bounded(
                connection.connect(),  # type: ignore[no-untyped-call]
                timeout=self._timeout,
                operation=f"connect for {self._subscribe_command}",
                target=self._target,
            )
        except BaseException:
            await _close(connection, self._timeout)
            raise
        link = self._links.get(address)  # opened meanwhile by another attach
        if link is not None:
            await _close(connection, self._timeout)
            return link
        link = _Link(address, connection, time.monotonic())
        link.reader = asyncio.create_task(self._read(link), name="redis-subscriber-read")
        self._links[address] = link
        return link

    async def _subscribe(self, link: _Link, group: _Group) -> None:
        """(S)SUBSCRIBE ``group`` on ``link``; its reader resolves the confirmation."""
        confirmed = asyncio.get_running_loop().create_future()
        link.confirming[group.name] = confirmed
        try:
            await link.connection.send_command(self._subscribe_command, group.channel)
            await bounded(
                asyncio.shield(confirmed),
                timeout=self._timeout,
                operation=f"{self._subscribe_command} {group.channel}",
                target=self._target,
            )
        finally:
            if link.confirming.get(group.name) is confirmed:
                del link.confirming[group.name]
        group.link = link
        group.subscribed_at = time.monotonic()
        group.probe_pending = None
        group.probe_sent = None  # probed next
        group.last_good = time.time()
        link.groups.add(group.index)
        self._next_probe = 0.0  # probe the new subscription at once

    async def _attach(self, groups: list[_Group]) -> list[_Group]:
        """Subscribe ``groups`` on their owners' connections; returns those that failed (their
        ``lost_reason`` says why)."""
        if self._cluster:
            # A probe SPUBLISH follows a MOVED: the slot map is current before the owner is
            # looked up (and the probe proves the new subscription soon after).
            await asyncio.gather(
                *(self._send_probe(group) for group in groups), return_exceptions=True
            )
        by_owner: dict[tuple[str, int] | None, list[_Group]] = {}
        failed: list[_Group] = []
        for group in groups:
            try:
                by_owner.setdefault(self._owner(group), []).append(group)
            except REDIS_FAILURES as exc:
                self._failed_attach(group, exc)
                failed.append(group)
        for address, owned in by_owner.items():
            try:
                link = await self._link_to(address)
            except _ATTACH_FAILURES as exc:
                for group in owned:
                    self._failed_attach(group, exc)
                failed += owned
                continue
            outcomes = await asyncio.gather(
                *(self._subscribe(link, group) for group in owned), return_exceptions=True
            )
            for group, outcome in zip(owned, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, _ATTACH_FAILURES):
                        raise outcome
                    self._failed_attach(group, outcome)
                    failed.append(group)
                    if not isinstance(outcome, ResponseError):
                        # Unconfirmed in time: the connection cannot be trusted with it.
                        self._drop_link(link, f"{self._subscribe_command} failed: {outcome}")
        return failed

    def _failed_attach(self, group: _Group, error: BaseException) -> None:
        group.attach_error = self._target.scrub(describe_failure(error))

    async def _read(self, link: _Link) -> None:
        """Read one subscription connection until it fails; a failure loses its groups."""
        try:
            while True:
                try:
                    reply = await link.connection.read_response()
                except ResponseError as exc:  # a refused (S)SUBSCRIBE: the oldest one sent
                    if link.confirming:
                        name = next(iter(link.confirming))
                        link.confirming.pop(name).set_exception(exc)
                    continue
                if isinstance(reply, list) and len(reply) == 3:
                    if reply[0] in (b"message", b"smessage"):
                        await self._handle(reply[2])
                    elif reply[0] in (b"subscribe", b"ssubscribe"):
                        confirmed = link.confirming.pop(reply[1], None)
                        if confirmed is not None and not confirmed.done():
                            confirmed.set_result(None)
                    elif reply[0] in (b"sunsubscribe", b"unsubscribe"):
                        self._unsubscribed(link, reply[1])
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            if not isinstance(error, REDIS_FAILURES):
                logger.error("the Redis subscriber failed unexpectedly", exc_info=error)
            cause = self._target.scrub(describe_failure(error))
            self._drop_link(link, f"subscription connection failed: {cause}")

    def _unsubscribed(self, link: _Link, name: bytes) -> None:
        if name in link.unsubscribing:
            link.unsubscribing.discard(name)  # ours (_trip_group): already handled
            return
        group = self._by_name.get(name)
        if group is not None and group.link is link:
            # Redis Cluster moved the channel's slot (resharding, failover): resubscribe on its
            # new owner; what was published meanwhile is reported as a gap.
            link.groups.discard(group.index)
            self._lose([group], "the shard channel's slot moved to another node")
            self._close_if_idle(link)

    def _trip_group(self, group: _Group, reason: str) -> None:
        """Stop receiving ``group`` on its connection (the others stay) and resubscribe it."""
        link = group.link
        if link is None:
            return
        link.groups.discard(group.index)
        link.unsubscribing.add(group.name)
        self._lose([group], reason)
        if not self._close_if_idle(link):
            self._in_background(
                link.connection.send_command(self._unsubscribe_command, group.channel)
            )

    def _close_if_idle(self, link: _Link) -> bool:
        """Close ``link`` once it carries no group (its slots all moved elsewhere)."""
        if link.groups or link.confirming or link.dropped:
            return False
        link.dropped = True
        if self._links.get(link.address) is link:
            del self._links[link.address]
        self._end_link(link)
        return True

    def _drop_link(self, link: _Link, reason: str) -> None:
        """The connection failed or went silent: close it, lose every group it carried."""
        if link.dropped:
            return
        link.dropped = True
        if self._links.get(link.address) is link:
            del self._links[link.address]
        lost = [self._groups[index] for index in sorted(link.groups)]
        link.groups.clear()
        for confirmed in link.confirming.values():
            if not confirmed.done():
                confirmed.set_exception(RedisError(reason))
        link.confirming.clear()
        self._end_link(link)
        self._lose(lost, reason)

    def _end_link(self, link: _Link) -> None:
        reader = link.reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        self._in_background(_close(link.connection, self._timeout))

    def _in_background(self, work: Coroutine[Any, Any, object]) -> None:
        async def run() -> None:
            with contextlib.suppress(*REDIS_FAILURES):
                await work

        task = asyncio.create_task(run())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _lose(self, groups: list[_Group], reason: str) -> None:
        if not groups:
            return
        for group in groups:
            group.link = None
            group.probe_pending = None
            if group.lost_at is None:
                group.lost_at = group.last_good
                group.lost_reason = reason
        self._give_up_all_own()  # their copies may not come back through these subscriptions
        logger.warning(
            "pub/sub subscription to %s on Redis at %s lost (%s); messages from other nodes "
            "on it are not received until it is back; resubscribing with backoff",
            ", ".join(group.channel for group in groups),
            self._target.location,
            reason,
        )
        self._changed.set()

    async def _supervise(self) -> None:
        """Resubscribe lost groups, with backoff, until every one is back."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            if self.subscribed:
                continue
            if not await self._reconnector.reconnect(
                self._resubscribe, on_failure=self._resubscribe_failed
            ):
                return  # stopped

    async def _resubscribe(self) -> bool:
        lost = [group for group in self._groups if group.link is None]
        failed = await self._attach(lost)
        restored = [group for group in lost if group not in failed]
        if restored:
            if self._publish_outage.in_outage:
                # Redis is back: end the publish outage before the gap tells clients that
                # delivery is (a probe through the publish path, not a wait for the probe loop).
                with contextlib.suppress(RedisStoreError):
                    await self._send_probe(restored[0])
                    self._publish_outage.recovered()
            await self._restored(restored)
        if failed:
            raise RedisError(
                f"{len(failed)} bus channel(s) not resubscribed: {failed[0].attach_error}"
            )
        return True

    def _resubscribe_failed(self, attempt: int, error: BaseException) -> None:
        logger.debug("resubscribe attempt %d failed: %s", attempt, error)

    async def _restored(self, groups: list[_Group]) -> None:
        """Report the window in which these channels' messages may have been lost: one gap."""
        ended = time.time()
        started = min(
            (group.lost_at for group in groups if group.lost_at is not None), default=ended
        )
        reasons = dict.fromkeys(group.lost_reason for group in groups if group.lost_reason)
        reason = "; ".join(reasons) or "resubscribed"
        if len(self._groups) > 1:
            reason += f" ({', '.join(group.channel for group in groups)})"
        for group in groups:
            group.lost_at, group.lost_reason = None, ""
        gap = DeliveryGap(started_at=started, ended_at=ended, reason=reason)
        self.gaps += 1
        self.resubscribes += 1
        logger.warning(
            "resubscribed to %s on Redis at %s; messages from other nodes published between "
            "%s and %s (%.1fs) may have been lost (%s)",
            ", ".join(group.channel for group in groups),
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

    def own_delivery(self, key: tuple[str, str, int, str]) -> asyncio.Future[int]:
        """The future of this node's own positioned message ``key``'s local delivery count.

        It gets 0 if the copy has not come back within ``probe_timeout`` (the probe loop looks
        every quarter of it: one sweep instead of a timer per message), when the subscription
        is lost, and when the broker stops."""
        entry = self._own.get(key)
        if entry is not None and entry[0] is not None:
            return entry[0]
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._expect_own(key, future)
        return future

    def forget_own(self, key: tuple[str, str, int, str]) -> None:
        self._own.pop(key, None)

    def skip_own(self, key: tuple[str, str, int, str]) -> None:
        """Nobody waits for this node's positioned message ``key``: its copy is delivered from
        the subscription as every other, and leaves no entry behind. (Its entry, if the copy
        came back first, is removed now; else one saying "nobody waits" is kept until the copy
        comes back, given up as the others are.)"""
        if self._own.pop(key, None) is None:
            self._expect_own(key, None)

    def _expect_own(
        self, key: tuple[str, str, int, str], future: asyncio.Future[int] | None
    ) -> None:
        """Keep ``key``'s entry until its copy comes back or ``probe_timeout`` passes."""
        if len(self._own) >= _MAX_OWN_PENDING:  # late copies nobody waits for any more
            self._give_up_own(next(iter(self._own)))
        self._own[key] = (future, asyncio.get_running_loop().time() + self._probe_timeout)

    def _give_up_own(self, key: tuple[str, str, int, str]) -> None:
        future, _ = self._own.pop(key)
        if future is not None and not future.done():
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
                if entry is None:
                    future = self.own_delivery(key)
                elif entry[0] is None:  # nobody waits for it
                    del self._own[key]
                    return
                else:
                    future = entry[0]
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

    # ---------------------------------------------------------------- stats

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        ages = [
            None if link.last_probe is None else now - link.last_probe
            for link in self._links.values()
        ]
        rtt = self._probe_rtt
        return {
            "channel": self._channel,
            "bus_channels": len(self._groups),
            "subscribed": self.subscribed,
            "subscribed_channels": sum(group.link is not None for group in self._groups),
            "subscriber_connections": len(self._links),
            # The oldest of the connections' last probes: the one that trips first.
            "last_probe_age": None
            if not ages or None in ages
            else max(a for a in ages if a is not None),
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
