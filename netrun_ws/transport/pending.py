"""Connections whose request is not read yet: counted per client IP and in total, each with a
deadline (``limits.request_timeout``, ``limits.max_pending_requests[_per_ip]``).

A connection is *pending* from TCP accept until its request's head has been read and either
the upgrade was handed to the websocket protocol or an answer started, and again from the first
byte of each next request on a kept-alive connection. Only pending connections can be held open
by a client that sends nothing or one byte a second (slowloris), so only they are bounded here;
:mod:`netrun_ws.transport.guard` tells this module when a connection starts and stops pending.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

__all__ = ["GRACE", "Pending", "PendingRequests", "RequestLimits"]


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """The ``limits`` keys that bound a connection before its protocols do: pending requests,
    and the frame budget of websocket protocols that keep none themselves."""

    timeout: float = 10.0
    max_pending: int = 1000
    max_pending_per_ip: int = 100
    #: Frames per second an upgraded connection may send (0: no budget), counted by
    #: :class:`netrun_ws.transport.frames.FrameBudget` for protocols that do not count them.
    frames_per_second: float = 0.0


class Pending(Protocol):
    """A pending connection, as :class:`PendingRequests` keeps it."""

    def evict(self) -> None:
        """Close the connection now (making room); calls ``remove``."""


#: Seconds a burst may stay over the limits before the oldest pending connections are closed.
#: asyncio accepts up to a backlog of connections in one go, before reading any of them: a burst
#: of clients (a reconnect storm, many behind one proxy) completes its requests within this.
GRACE = 0.5


class PendingRequests:
    """The pending connections of one server, oldest first, overall and per client IP.

    Past a limit (``max_pending_per_ip`` for an IP, ``max_pending`` in all) the oldest pending
    connections, of that IP or overall, are closed :data:`GRACE` seconds later unless they have
    completed their request by then; past twice ``max_pending``, a new connection is closed at
    once. Slow clients are cycled out, oldest first, while clients that complete their request
    in milliseconds keep getting in, and one IP can only ever evict its own connections.
    """

    __slots__ = ("_by_ip", "_enforcing", "_loop", "_pending", "limits")

    def __init__(self, limits: RequestLimits) -> None:
        self.limits = limits
        self._pending: dict[Pending, str] = {}  # insertion order: oldest first
        self._by_ip: dict[str, dict[Pending, None]] = {}
        self._enforcing: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def admit(self, connection: Pending, ip: str) -> bool:
        """Count a new connection from ``ip`` as pending, or refuse it (False: the caller
        closes it at once) when the node holds twice ``max_pending``."""
        if len(self._pending) >= 2 * self.limits.max_pending:
            return False
        self.add(connection, ip)
        return True

    def add(self, connection: Pending, ip: str) -> None:
        """Count a connection as pending (a new one, or a kept-alive one's next request)."""
        self._pending[connection] = ip
        of_ip = self._by_ip.get(ip)
        if of_ip is None:
            of_ip = self._by_ip[ip] = {}
        of_ip[connection] = None
        over = (
            len(of_ip) > self.limits.max_pending_per_ip
            or len(self._pending) > self.limits.max_pending
        )
        if over and self._enforcing is None:
            loop = self._loop = self._loop or asyncio.get_running_loop()
            self._enforcing = loop.call_later(GRACE, self._enforce)

    def remove(self, connection: Pending) -> None:
        ip = self._pending.pop(connection)
        of_ip = self._by_ip[ip]
        del of_ip[connection]
        if not of_ip:
            del self._by_ip[ip]

    def held_by(self, ip: str) -> int:
        return len(self._by_ip.get(ip, ()))

    def _enforce(self) -> None:
        self._enforcing = None
        limit = self.limits.max_pending_per_ip
        for of_ip in [of_ip for of_ip in self._by_ip.values() if len(of_ip) > limit]:
            for connection in list(of_ip)[: len(of_ip) - limit]:
                connection.evict()
        while len(self._pending) > self.limits.max_pending:
            next(iter(self._pending)).evict()
