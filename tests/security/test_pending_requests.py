"""PendingRequests (netrun_ws.transport.pending), the bookkeeping of connections whose request is
not read yet: which ones its limits close, in which order. Pure logic, no sockets; when the
grace runs out is the event loop's business, so the enforcing step is called directly."""

from __future__ import annotations

import asyncio

from netrun_ws.transport.pending import PendingRequests, RequestLimits


class Conn:
    """A pending connection that records its eviction."""

    def __init__(self, pending: PendingRequests, name: str) -> None:
        self.pending = pending
        self.name = name
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True
        self.pending.remove(self)


def open_many(pending: PendingRequests, ip: str, count: int) -> list[Conn]:
    conns = [Conn(pending, f"{ip}#{i}") for i in range(count)]
    for conn in conns:
        assert pending.admit(conn, ip)
    return conns


def enforce(pending: PendingRequests) -> None:
    pending._enforce()  # what the loop runs GRACE seconds after a limit was passed


async def test_past_an_ips_limit_its_oldest_are_evicted_and_no_one_elses() -> None:
    pending = PendingRequests(RequestLimits(max_pending=100, max_pending_per_ip=3))
    others = open_many(pending, "10.0.0.2", 3)
    mine = open_many(pending, "10.0.0.1", 5)
    assert pending.held_by("10.0.0.1") == 5  # nothing closed before the grace
    enforce(pending)
    assert [conn.evicted for conn in mine] == [True, True, False, False, False]
    assert not any(conn.evicted for conn in others)
    assert pending.held_by("10.0.0.1") == 3
    assert len(pending) == 6


async def test_those_that_complete_within_the_grace_are_not_counted() -> None:
    pending = PendingRequests(RequestLimits(max_pending=100, max_pending_per_ip=3))
    burst = open_many(pending, "10.0.0.1", 6)
    for conn in burst[:4]:
        pending.remove(conn)  # their requests were read
    enforce(pending)
    assert not any(conn.evicted for conn in burst)
    assert pending.held_by("10.0.0.1") == 2


async def test_past_the_total_the_oldest_overall_are_evicted() -> None:
    pending = PendingRequests(RequestLimits(max_pending=4, max_pending_per_ip=10))
    first = open_many(pending, "10.0.0.1", 3)
    second = open_many(pending, "10.0.0.2", 3)
    enforce(pending)
    assert [conn.evicted for conn in first + second] == [True, True] + [False] * 4
    assert len(pending) == 4


async def test_past_twice_the_total_a_new_connection_is_refused_at_once() -> None:
    pending = PendingRequests(RequestLimits(max_pending=2, max_pending_per_ip=10))
    open_many(pending, "10.0.0.1", 4)
    assert not pending.admit(Conn(pending, "late"), "10.0.0.9")
    assert pending.held_by("10.0.0.9") == 0


async def test_a_kept_alive_connections_next_request_counts_again() -> None:
    pending = PendingRequests(RequestLimits(max_pending=10, max_pending_per_ip=1))
    (conn,) = open_many(pending, "10.0.0.1", 1)
    pending.remove(conn)  # answered
    pending.add(conn, "10.0.0.1")  # the next request's first byte
    assert pending.held_by("10.0.0.1") == 1
    enforce(pending)
    assert not conn.evicted


async def test_the_enforcing_step_is_scheduled_once_per_pass() -> None:
    pending = PendingRequests(RequestLimits(max_pending=3, max_pending_per_ip=1))
    open_many(pending, "10.0.0.1", 3)
    scheduled = pending._enforcing
    assert isinstance(scheduled, asyncio.TimerHandle)
    open_many(pending, "10.0.0.2", 1)
    assert pending._enforcing is scheduled
    scheduled.cancel()
