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

__all__ = ["PendingRequests", "RequestLimits"]


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """The ``limits`` keys that bound pending requests."""

    timeout: float = 10.0
    max_pending: int = 1000
    max_pending_per_ip: int = 100


class PendingRequests:
    """The pending connections of one server, by client IP."""

    __slots__ = ("_per_ip", "limits", "total")

    def __init__(self, limits: RequestLimits) -> None:
        self.limits = limits
        self._per_ip: dict[str, int] = {}
        self.total = 0

    def admit(self, ip: str) -> bool:
        """Count a new connection from ``ip`` as pending, or refuse it (False) when the node or
        that IP holds as many as allowed: the caller closes it at once."""
        held = self._per_ip.get(ip, 0)
        if self.total >= self.limits.max_pending or held >= self.limits.max_pending_per_ip:
            return False
        self.add(ip)
        return True

    def add(self, ip: str) -> None:
        """Count a connection already accepted (its next request) as pending, without a limit:
        it holds its file descriptor either way."""
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        self.total += 1

    def remove(self, ip: str) -> None:
        held = self._per_ip[ip] - 1
        if held:
            self._per_ip[ip] = held
        else:
            del self._per_ip[ip]
        self.total -= 1

    def held_by(self, ip: str) -> int:
        return self._per_ip.get(ip, 0)
