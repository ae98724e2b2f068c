"""A node's counts, typed: what the metrics sinks report, as a plugin reads them.

``collect_stats(host)`` reads them from what counts them already (each connection its own frames
and bytes, the connection manager its connects and closes, the store its own counters) at the
moment it is called: nothing is recorded per message for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netrun_ws.connection import Connection
    from netrun_ws.host import Host

__all__ = ["ConnectionStats", "HostStats", "collect_stats"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionStats:
    """This node's connections and their traffic since the host was created.

    Traffic and drop counts include connections that have closed since.
    """

    #: Connections open now.
    total_connections: int
    #: Users with at least one open connection.
    total_users: int
    connections_per_user: Mapping[str, int]
    max_connections_per_user: int
    max_connections: int | None
    #: Connections counted against the limits but not yet accepted.
    pending_connections: int
    #: Connections closed but still flushing their last frames.
    closing_connections: int
    #: Connections accepted since start.
    total_connects: int
    messages_sent: int
    messages_received: int
    bytes_sent: int
    bytes_received: int
    #: Frames dropped by the ``drop_oldest`` overflow policy.
    dropped_messages: int
    #: Frames waiting in the outbound queues now.
    queued_frames: int
    #: Connections dropped because writing to their socket failed.
    failed_sends: int
    #: Connections closed with 4101 because their outbound queue overflowed.
    slow_consumer_disconnects: int
    send_queue_size: int
    overflow_policy: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HostStats:
    """What :func:`collect_stats` read from one :class:`~netrun_ws.host.Host`."""

    connections: ConnectionStats
    #: The connections open when the stats were read. These are the live objects: their
    #: counters (``messages_sent``, ``bytes_received``, ...) go on counting.
    open_connections: tuple[Connection, ...]
    #: The store's own counters (``Store.stats()``), or None before the app has started.
    store: Mapping[str, Any] | None


def collect_stats(host: Host) -> HostStats:
    """This node's counts now (one pass over its connections)."""
    manager = host.manager
    return HostStats(
        connections=ConnectionStats(**manager.get_stats()),
        open_connections=manager.connections(),
        store=host.store.stats() if host.started else None,
    )
