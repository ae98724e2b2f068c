"""``RedisStore``: several netrun-ws nodes sharing sessions, presence and delivery through Redis.

It implements :class:`~netrun_ws.store.Store` with the behaviour of
:class:`~netrun_ws.builtin.store_memory.MemoryStore`, across every node that uses the same Redis
and ``key_prefix``:

- ``sessions``: a :class:`~netrun_ws.session.WebSocketSessionManager` on the same Redis, so a
  state saved on one node is restored on another;
- ``publish``: local delivery, then ONE ``PUBLISH`` for the cluster (on its channel's bus:
  :mod:`netrun_ws.redis.broker`); other nodes deliver to their own connections. A room or
  user message with history on is instead ONE script call that assigns its position, keeps it
  and publishes it (:mod:`netrun_ws.redis.history`); every node, this one included, delivers it
  from the subscription, in offset order. ``publish`` waits for its own copy to come back, for
  the local count, unless the host said (``LocalRecipientStore``) that no connection here is
  reached: then it returns after the script's reply, with ``local=0``. While Redis does not take
  it, it is delivered locally without a position;
- presence (connections per user, rooms, online users, nodes): :mod:`netrun_ws.redis.presence`,
  where a node that died without saying goodbye drops out within ``node_ttl`` seconds.

Guarantees and their limits:

- cross-node delivery is at-most-once. When this node's subscription is lost and comes back,
  the window in which messages from other nodes may have been lost is passed to ``on_gap`` (and
  counted in ``stats()["gaps"]``), never silent;
- while Redis is unreachable, ``publish`` still delivers locally and returns promptly: the
  PUBLISH is dropped and counted in ``publish_failures`` (nothing is buffered), logged once per
  outage. ``remove_connection``, ``join_room`` and ``leave_room`` are applied to this node's
  copy and written to Redis when it answers again; ``add_connection`` (which must check the
  cluster-wide limit) and the reads raise :class:`~netrun_ws.redis.calls.RedisStoreError`;
- revocations (``revoke``/``revoked``) are keys ``P:revoked:<subject>`` holding the revocation
  time, expiring with it (Redis forgets them);
- a connection's records (``ConnectionRecords``): at open, the revocation check, the session's
  claim, its record and the per-user count are one script, one round trip
  (:mod:`netrun_ws.redis.records`); at close, the claim, the saved state and the release too;
- every Redis call is bounded by ``operation_timeout``.

Redis Cluster (``cluster=True``, the URL naming any node): the per-message work is spread over
``bus_groups`` slot groups (:mod:`netrun_ws.redis.layout`): a room's or user's history keys and
the bus channel that carries its messages are under its group's hash tag ``{P:<g>}``, so the
history script, its SPUBLISH and the pub/sub output for a channel run on the master that owns
that group's slot, and more masters add message capacity. Every node subscribes to every group's
shard channel (one connection per master) and still reads every cross-node message. The
per-connection keys (presence, records, sessions, revocations) stay under the one hash tag
``{P}``, on one master. The store follows failovers and resharding (MOVED/ASK through the
cluster client; a moved group is resubscribed on its new owner alone, and its gap reported).
Order: per channel, delivery is in offset order; across channels of different groups, one
sender's messages may arrive in another order than sent (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import re
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from netrun_ws._masking import mask_url
from netrun_ws.config import HistoryConfig
from netrun_ws.fast_records import publish_result
from netrun_ws.history import envelope_channel, splice_position
from netrun_ws.reconnection import ReconnectionConfig
from netrun_ws.redis.broker import RedisBroker, encode_header_prefix
from netrun_ws.redis.calls import (
    AnyRedis,
    RedisStoreError,
    RedisTarget,
    bounded,
    finish_within,
)
from netrun_ws.redis.history import RedisHistory
from netrun_ws.redis.layout import DEFAULT_BUS_GROUPS, KeyLayout
from netrun_ws.redis.pipeline import PipelinedConnection
from netrun_ws.redis.presence import RedisPresence
from netrun_ws.redis.records import revocation_args
from netrun_ws.session import WebSocketSessionManager, strict_json
from netrun_ws.session_backends import SessionStoreError
from netrun_ws.store import (
    Deliver,
    Envelope,
    GapCallback,
    HasLocalRecipients,
    HistoryRead,
    Opened,
    OpenRefusal,
    Position,
    PublishResult,
    RevocationCheck,
)

__all__ = ["DEFAULT_RECONNECT", "RedisStore", "RedisStoreError"]

logger = logging.getLogger(__name__)

#: How the subscriber backs off while resubscribing: 0.1 s doubling up to 5 s, forever.
DEFAULT_RECONNECT = ReconnectionConfig(
    initial_delay=0.1, max_delay=5.0, max_attempts=0, backoff_multiplier=2.0, jitter=True
)
#: Connections in the command pool (presence, PUBLISH); a burst waits for a free one.
POOL_SIZE = 32
#: What a shutdown step gets when the stop budget is already spent (local socket closes).
_LAST_STEP_GRACE = 0.1
_CLUSTER_SCHEMES = ("redis://", "rediss://")
_NODE_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_OPEN_REFUSALS: dict[str, OpenRefusal] = {
    "revoked": "revoked",
    "session_not_yours": "session_not_yours",
    "user_limit": "user_limit",
}


def _seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number of seconds, got {value!r:.40}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return float(value)


def new_node_id() -> str:
    """``<host>-<pid>-<random>``: unique per process, readable in ``nodes()`` and logs."""
    host = _NODE_CHARS.sub("_", socket.gethostname())[:40] or "node"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class RedisStore:
    """A :class:`~netrun_ws.store.Store` for a cluster of nodes sharing one Redis."""

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "netrun_ws",
        node_ttl: float = 10.0,
        node_heartbeat: float = 2.0,
        probe_interval: float = 1.0,
        probe_timeout: float = 3.0,
        connection_ttl: float = 3600.0,
        operation_timeout: float = 5.0,
        reconnect: ReconnectionConfig = DEFAULT_RECONNECT,
        cluster: bool = False,
        bus_groups: int = DEFAULT_BUS_GROUPS,
    ) -> None:
        self.node_ttl = _seconds("node_ttl", node_ttl)
        self.node_heartbeat = _seconds("node_heartbeat", node_heartbeat)
        self.probe_interval = _seconds("probe_interval", probe_interval)
        self.probe_timeout = _seconds("probe_timeout", probe_timeout)
        self.operation_timeout = _seconds("operation_timeout", operation_timeout)
        #: The budget of ``stop`` (each step bounded by what is left of it).
        self.stop_timeout = 2 * self.operation_timeout
        if self.node_heartbeat >= self.node_ttl:
            raise ValueError(
                f"node_heartbeat ({node_heartbeat}) must be shorter than node_ttl ({node_ttl}), "
                "or live nodes would flicker out of presence"
            )
        if self.probe_timeout < self.probe_interval:
            raise ValueError(
                f"probe_timeout ({probe_timeout}) must be at least probe_interval "
                f"({probe_interval})"
            )
        #: True on Redis Cluster: keys under one hash tag, a shard channel for the bus.
        self.cluster = cluster
        if cluster and not (isinstance(url, str) and url.lower().startswith(_CLUSTER_SCHEMES)):
            shown = mask_url(url) if isinstance(url, str) else type(url).__name__
            raise ValueError(
                f"a Redis Cluster url must start with redis:// or rediss:// and name one of its "
                f"nodes, got {shown!r}"
            )
        self.key_prefix = key_prefix
        #: Key and bus names: on a cluster, the per-connection keys under the hash tag {prefix}
        #: (one slot), history and the bus spread over ``bus_groups`` slot groups.
        self.layout = KeyLayout(key_prefix, cluster=cluster, groups=bus_groups)
        keys = self.layout.keys
        # A Redis Cluster client does not queue calls for a full pool: the gate does.
        self._target = RedisTarget(url, asyncio.Semaphore(POOL_SIZE) if cluster else None)
        self._session_client: RedisCluster | None = None
        if cluster:
            # Its calls are not gated: allow it more connections per node than the pool size.
            self._session_client = self._make_cluster_client(url, operation_timeout, 8 * POOL_SIZE)
        # Validates the URL scheme and the prefix, with the password masked in errors.
        self.sessions = WebSocketSessionManager(
            redis_url=None if cluster else url,
            redis_client=self._session_client,
            connection_ttl=connection_ttl,
            key_prefix=keys,
            operation_timeout=operation_timeout,
        )
        self._keys = keys
        #: The bus channel of group 0 (one Redis: the only one).
        self.channel = self.layout.buses[0]
        self.node_id = new_node_id()
        self._reconnect = reconnect
        self._deliver: Deliver | None = None
        self._client: AnyRedis | None = None
        self._broker: RedisBroker | None = None
        self._presence: RedisPresence | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._published = 0
        self._connection_ttl = connection_ttl
        self._session_ttl_ms = max(1, round(connection_ttl * 1000))
        self._history_config = HistoryConfig()
        self._history: RedisHistory | None = None
        self._pipeline: PipelinedConnection | None = None
        self._has_local: HasLocalRecipients | None = None

    @property
    def location(self) -> str:
        """The Redis URL with its password masked."""
        return self._target.location

    def __repr__(self) -> str:
        return f"RedisStore({self.location!r}, node_id={self.node_id!r})"

    # ---------------------------------------------------------------- lifecycle

    async def start(self, deliver: Deliver, on_gap: GapCallback) -> None:
        """Connect, register this node, subscribe and see a probe come back.

        Raises :class:`RedisStoreError` (one line naming the masked URL) if Redis does not
        answer, RuntimeError if already started.
        """
        if self._deliver is not None:
            raise RuntimeError("the redis store is already started")
        try:
            await self.sessions.initialize()
        except SessionStoreError as exc:
            raise RedisStoreError(f"cannot start the Redis store: {exc}") from None
        client = self._make_client()
        presence = RedisPresence(
            client,
            target=self._target,
            key_prefix=self._keys,
            node_id=self.node_id,
            node_ttl=self.node_ttl,
            node_heartbeat=self.node_heartbeat,
            timeout=self.operation_timeout,
        )
        # One Redis: publishes go pipelined on their own connection (a cluster keeps its client).
        pipeline = (
            None
            if self.cluster
            else PipelinedConnection(self._target, timeout=self.operation_timeout)
        )
        broker = RedisBroker(
            client,
            pipeline=pipeline,
            target=self._target,
            buses=self.layout.buses,
            cluster=self.cluster,
            node_id=self.node_id,
            probe_interval=self.probe_interval,
            probe_timeout=self.probe_timeout,
            timeout=self.operation_timeout,
            reconnect=self._reconnect,
        )
        try:
            await presence.beat()
            await broker.start(deliver, on_gap)
        except BaseException as exc:
            await self._shutdown(client, presence, broker, None, pipeline)
            if isinstance(exc, RedisStoreError):
                raise RedisStoreError(f"cannot start the Redis store: {exc}") from None
            raise
        self._client, self._presence, self._broker = client, presence, broker
        self._pipeline = pipeline
        self._history = RedisHistory(
            client,
            pipeline=pipeline,
            target=self._target,
            layout=self.layout,
            publish_command="SPUBLISH" if self.cluster else "PUBLISH",
            timeout=self.operation_timeout,
            session_ttl=self._connection_ttl,
            config=self._history_config,
        )
        self._heartbeat = asyncio.create_task(presence.run(), name="redis-presence")
        self._deliver = deliver
        logger.info(
            "Redis store started: node %s on %s (channel %s%s)",
            self.node_id,
            self.location,
            self.channel,
            f" and {self.layout.groups - 1} more" if self.layout.groups > 1 else "",
        )

    async def stop(self) -> None:
        """Stop receiving, remove this node's presence at once, close the connections.

        Idempotent; never raises for a Redis failure, and returns within about
        ``2 * operation_timeout`` seconds whatever Redis does (down, frozen, killed meanwhile):
        a step that does not finish in time is abandoned, and one warning line names every
        abandoned step (an unremoved presence then expires after node_ttl).
        """
        if self._deliver is None:
            return
        self._deliver = None
        client, presence, broker, heartbeat = (
            self._client,
            self._presence,
            self._broker,
            self._heartbeat,
        )
        pipeline = self._pipeline
        self._client, self._heartbeat, self._pipeline = None, None, None
        await self._shutdown(client, presence, broker, heartbeat, pipeline)

    async def _shutdown(
        self,
        client: AnyRedis | None,
        presence: RedisPresence | None,
        broker: RedisBroker | None,
        heartbeat: asyncio.Task[None] | None,
        pipeline: PipelinedConnection | None,
    ) -> None:
        """Every step of a shutdown, each bounded by what is left of one shared budget."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.stop_timeout
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = []
        if heartbeat is not None:
            heartbeat.cancel()
            steps.append(("presence heartbeat", lambda: asyncio.wait({heartbeat})))
        if broker is not None:
            steps.append(("subscriber", broker.stop))
        if pipeline is not None:
            steps.append(("publish connection", pipeline.stop))
        if presence is not None:
            steps.append(("presence removal", presence.retire))
        if client is not None:
            steps.append(("command connections", client.aclose))
        steps.append(("session store", self.sessions.close))
        if self._session_client is not None:  # the manager leaves a given client open
            steps.append(("session connections", self._session_client.aclose))
        abandoned = []
        for step, run in steps:
            # Every step gets a moment even past the deadline: closing sockets is local work.
            budget = max(deadline - loop.time(), _LAST_STEP_GRACE)
            outcome = await finish_within(step, run(), budget)
            if outcome is not None:
                abandoned.append(outcome)
        if abandoned:
            logger.warning(
                "Redis store %s stopped in %.1fs, abandoning: %s",
                self.node_id,
                loop.time() - started,
                "; ".join(f"{item.step} ({self._target.scrub(item.why)})" for item in abandoned),
            )

    async def ready(self) -> bool:
        """True when Redis answers, this node's heartbeat is current and its probe comes back."""
        broker, presence, client = self._broker, self._presence, self._client
        if self._deliver is None or broker is None or presence is None or client is None:
            return False
        if not (broker.healthy() and presence.alive()):
            return False
        try:
            await bounded(
                client.ping(),
                timeout=min(self.operation_timeout, self.probe_timeout),
                operation="PING",
                target=self._target,
            )
        except RedisStoreError:
            return False
        return True

    # ---------------------------------------------------------------- delivery

    async def publish(self, envelope: Envelope) -> PublishResult:
        """Deliver locally, then one PUBLISH for the other nodes (never raises for an outage)."""
        deliver, broker = self._deliver, self._broker
        if deliver is None or broker is None:
            raise RuntimeError("the redis store is not started")
        self._published += 1
        history = self._history
        channel = None
        if history is not None and envelope.pos is None:
            channel = envelope_channel(envelope, self._history_config)
        if channel is None or broker.in_publish_outage:
            local = await deliver(envelope)
            group = self.layout.envelope_group(envelope) if self.cluster else 0
            return PublishResult(local=local, remote_nodes=await broker.send(envelope, group))
        assert history is not None and isinstance(envelope.payload, str)  # by envelope_channel
        header = encode_header_prefix(self.node_id, envelope)
        try:
            pos, receivers = await history.publish(channel, header, envelope.payload)
        except RedisStoreError as exc:
            broker.publish_failed(str(exc))
            return PublishResult(local=await deliver(envelope))  # no position: none was given
        if not broker.receiving(self.layout.group_of(channel) if self.cluster else 0):
            # Our copy will not come back: deliver here at once (in order, since nothing else
            # arrives from the bus meanwhile); the outage is reported as a delivery gap.
            spliced = splice_position(envelope.payload, channel, pos.offset, pos.epoch)
            local = await deliver(dataclasses.replace(envelope, payload=spliced, pos=pos))
            return PublishResult(local=local, remote_nodes=receivers)
        key = (envelope.kind, envelope.target or "", pos.offset, pos.epoch)
        has_local = self._has_local
        if has_local is not None and not has_local(envelope):
            # Nothing here to count or to keep in order with: done after one round trip. The
            # copy is still delivered from the subscription (to a connection that came since).
            broker.skip_own(key)
            return publish_result(0, max(0, receivers - 1))
        try:
            # Delivered here from the subscription, in offset order with the other nodes'; 0
            # when it did not come back within probe_timeout (the subscription is down: its gap
            # is reported when it is back). The broker bounds the wait, not a timer per call.
            local = await broker.own_delivery(key)
        finally:
            broker.forget_own(key)
        return publish_result(local, max(0, receivers - 1))

    def use_local_recipients(self, has_local: HasLocalRecipients) -> None:
        """``LocalRecipientStore``: a positioned publish with no recipient on this node (as
        ``has_local`` answers after its history call) does not wait for its own copy."""
        self._has_local = has_local

    # ---------------------------------------------------------------- history

    def configure_history(self, config: HistoryConfig) -> None:
        self._history_config = config
        if self._history is not None:
            self._history.config = config

    def _require_history(self) -> RedisHistory:
        if self._deliver is None or self._history is None:
            raise RuntimeError("the redis store is not started")
        return self._history

    async def history_top(self, channel: str) -> Position:
        return await self._require_history().top(channel)

    async def history_since(
        self, channel: str, since: Position, max_messages: int, max_bytes: int
    ) -> HistoryRead:
        return await self._require_history().since(channel, since, max_messages, max_bytes)

    async def record_join(self, session_id: str, channel: str) -> Position:
        return await self._require_history().top(channel, session_id)

    async def forget_join(self, session_id: str, channel: str) -> None:
        await self._require_history().forget_join(session_id, channel)

    async def session_channels(self, session_id: str) -> dict[str, Position]:
        return await self._require_history().session_channels(session_id)

    # ---------------------------------------------------------------- presence

    async def add_connection(
        self, connection_id: str, user_id: str, max_per_user: int | None
    ) -> bool:
        return await self._require_presence().add_connection(connection_id, user_id, max_per_user)

    async def remove_connection(self, connection_id: str, user_id: str) -> None:
        await self._require_presence().remove_connection(connection_id, user_id)

    # ---------------------------------------------------------------- a connection's records

    async def open_connection(
        self,
        session_id: str,
        user_id: str,
        username: str,
        max_per_user: int | None,
        revocations: Sequence[RevocationCheck],
    ) -> Opened:
        """The open's four calls in one script, one round trip (``ConnectionRecords``)."""
        presence = self._require_presence()
        record = self.sessions.new_record(session_id, user_id, username)
        store_id = record.connection_id
        args = [
            session_id,
            record.to_json(),
            repr(record.connected_at),
            str(self._session_ttl_ms),
            "" if max_per_user is None else str(max_per_user),
            repr(time.time()),
            *revocation_args(revocations),
        ]
        try:
            outcome = await presence.open_connection(store_id, user_id, args)
        except BaseException:
            # Failed, timed out (the script may still run) or cancelled: remove what it may
            # have written, as a failed add_connection's admission did.
            with contextlib.suppress(Exception):
                await presence.close_connection(store_id, user_id, self._close_args(None, ""))
            raise
        if outcome == "opened":
            return Opened(store_id)
        return Opened(None, _OPEN_REFUSALS[outcome])

    async def close_connection(
        self, store_id: str, session_id: str | None, user_id: str, state: dict[str, Any]
    ) -> bool:
        """The close's four calls in one script, one round trip (``ConnectionRecords``). A state
        that is not JSON is refused (ValueError) after the rest is done."""
        refused: ValueError | None = None
        try:
            payload = strict_json("state", state)
        except ValueError as error:
            payload, refused = "", error
        presence = self._require_presence()
        saved = await presence.close_connection(
            store_id, user_id, self._close_args(session_id, payload)
        )
        if refused is not None:
            raise refused
        return saved

    def _close_args(self, session_id: str | None, payload: str) -> list[str]:
        return [session_id or "", payload, str(self._session_ttl_ms)]

    async def join_room(self, room: str, connection_id: str, user_id: str) -> None:
        await self._require_presence().join_room(room, connection_id, user_id)

    async def leave_room(self, room: str, connection_id: str) -> None:
        await self._require_presence().leave_room(room, connection_id)

    async def room_members(self, room: str) -> dict[str, str]:
        return await self._require_presence().room_members(room)

    async def online_users(self) -> set[str]:
        return await self._require_presence().online_users()

    async def nodes(self) -> list[dict[str, Any]]:
        return await self._require_presence().nodes()

    # ---------------------------------------------------------------- revocations

    async def revoke(self, subject: str, revoked_at: float, until: float) -> None:
        """``P:revoked:<subject>`` = revoked_at, expiring at ``until`` (Redis drops it then)."""
        client = self._require_client()
        ttl_ms = max(1, math.ceil((until - time.time()) * 1000))
        await bounded(
            client.set(self._revoked_key(subject), repr(revoked_at), px=ttl_ms),
            timeout=self.operation_timeout,
            operation="SET revocation",
            target=self._target,
        )

    async def revoked(self, subjects: Sequence[str]) -> list[float | None]:
        """One MGET for every subject."""
        client = self._require_client()
        values = await bounded(
            client.mget([self._revoked_key(subject) for subject in subjects]),
            timeout=self.operation_timeout,
            operation="MGET revocations",
            target=self._target,
        )
        return [_revoked_at(value) for value in values]

    def _revoked_key(self, subject: str) -> str:
        return f"{self._keys}:revoked:{subject}"

    def stats(self) -> dict[str, Any]:
        """Counters: published, received, publish_failures, gaps, subscribed, last_probe_age, ..."""
        stats: dict[str, Any] = {
            "backend": "redis",
            "node_id": self.node_id,
            "redis": self.location,
            "published": self._published,
        }
        if self._broker is not None:
            stats.update(self._broker.stats())
        else:
            stats.update(
                channel=self.channel,
                subscribed=False,
                last_probe_age=None,
                received=0,
                publish_failures=0,
                gaps=0,
            )
        if self._presence is not None:
            stats.update(self._presence.stats())
        return stats

    # ---------------------------------------------------------------- internals

    def _require_presence(self) -> RedisPresence:
        if self._deliver is None or self._presence is None:
            raise RuntimeError("the redis store is not started")
        return self._presence

    def _require_client(self) -> AnyRedis:
        if self._deliver is None or self._client is None:
            raise RuntimeError("the redis store is not started")
        return self._client

    @staticmethod
    def _make_cluster_client(url: str, timeout: float, connections: int) -> RedisCluster:
        # The cluster client follows MOVED/ASK and refreshes its slot map by itself.
        return RedisCluster.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            max_connections=connections,  # per node
        )

    def _make_client(self) -> AnyRedis:
        timeout = self.operation_timeout
        if self.cluster:
            return self._make_cluster_client(self._target.url, timeout, POOL_SIZE)
        # One quick retry, so the first call on a pooled connection that a Redis restart
        # closed reconnects instead of failing.
        retry = Retry(ExponentialBackoff(cap=0.2, base=0.02), 1)
        pool = BlockingConnectionPool.from_url(
            self._target.url,
            max_connections=POOL_SIZE,
            timeout=timeout,
            decode_responses=True,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=retry,
            retry_on_error=[RedisConnectionError],
        )
        return Redis.from_pool(pool)


def _revoked_at(value: Any) -> float | None:
    """A stored revocation time; an unreadable value counts as revoked now (fail closed)."""
    if value is None:
        return None
    try:
        revoked_at = float(value)
    except (TypeError, ValueError):
        return time.time()
    return revoked_at if math.isfinite(revoked_at) else time.time()
