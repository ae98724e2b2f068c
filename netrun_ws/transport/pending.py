"""Connections whose request is not read yet: counted per client IP and in total, each with a
deadline (``limits.request_timeout``, ``limits.max_pending_requests[_per_ip]``).

A connection is *pending* from TCP accept until its request's head has been read and either
the upgrade was handed to the websocket protocol or an answer started, and again from the first
byte of each next request on a kept-alive connection. Only pending connections can be held open
by a client that sends nothing or one byte a second (slowloris), so only they are bounded here;
:mod:`netrun_ws.transport.guard` tells this module when a connection starts and stops pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Pending", "PendingRequests", "RequestLimits"]


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """The ``limits`` keys that bound pending requests."""

    timeout: float = 10.0
    max_pending: int = 1000
    max_pending_per_ip: int = 100


class Pending(Protocol):
    """A pending connection, as :class:`PendingRequests` keeps it."""

    def evict(self) -> None:
        """Close the connection now (making room for a newer one); calls ``remove``."""


class PendingRequests:
    """The pending connections of one server, oldest first, and how many each client IP holds.

    From one IP, a connection past ``max_pending_per_ip`` is refused. Past ``max_pending`` in
    all, the one pending longest is evicted to make room: clients that complete their request
    in milliseconds keep getting in while slow ones (from many IPs) are cycled out.
    """

    __slots__ = ("_pending", "_per_ip", "limits")

    def __init__(self, limits: RequestLimits) -> None:
        self.limits = limits
        self._pending: dict[Pending, str] = {}  # insertion order: oldest first
        self._per_ip: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def admit(self, connection: Pending, ip: str) -> bool:
        """Count a new connection from ``ip`` as pending, or refuse it (False) when that IP
        holds as many as allowed: the caller closes it at once."""
        if self._per_ip.get(ip, 0) >= self.limits.max_pending_per_ip:
            return False
        while len(self._pending) >= self.limits.max_pending:
            next(iter(self._pending)).evict()
        self.add(connection, ip)
        return True

    def add(self, connection: Pending, ip: str) -> None:
        """Count a connection already accepted (its next request) as pending, without the
        per-IP limit: it holds its file descriptor either way."""
        self._pending[connection] = ip
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1

    def remove(self, connection: Pending) -> None:
        ip = self._pending.pop(connection)
        held = self._per_ip[ip] - 1
        if held:
            self._per_ip[ip] = held
        else:
            del self._per_ip[ip]

    def held_by(self, ip: str) -> int:
        return self._per_ip.get(ip, 0)
