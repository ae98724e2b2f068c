"""What every connection goes through before and under its protocols: request deadlines and
limits on pending connections (slowloris), and reading held while writes back up.

:func:`guard_requests` wraps the HTTP protocol class of a ``uvicorn.Config`` (whichever it is:
uvicorn's own, or :class:`netrun_ws.transport.NetrunHttpToolsProtocol`) in
:class:`GuardedProtocol`, which sees the connection from TCP accept and gives the protocols
underneath a :class:`GuardedTransport`. Both use public API only (asyncio's protocols and
transports, and uvicorn's ``Config`` taking a protocol class), so they serve under
``server.ws_protocol: uvicorn`` and on the fence's fallback as well:

- Past ``limits.max_pending_requests`` (or ``_per_ip``) pending connections, the oldest are
  closed (:class:`netrun_ws.transport.pending.PendingRequests` says when).
- A pending connection (:mod:`netrun_ws.transport.pending`) that has not completed its request
  within ``limits.request_timeout`` gets ``408 Request Timeout`` and is closed. It stops
  pending when the protocol writes (an answer, or the 101) or upgrades (``set_protocol``).
- Once upgraded, reading from the client is held while the socket's write buffer is over its
  high-water mark, until it drains to the low one: a client that sends pings and never reads
  the pongs (or anything else) fills its own TCP window, not the server's memory.
- Once upgraded to a websocket protocol that keeps no frame budget of its own (uvicorn's), a
  :class:`netrun_ws.transport.frames.FrameBudget` counts every frame the client sends
  (``limits.frames_per_second``) and holds reading while the budget is spent. netrun-ws's
  protocol counts its own frames: nothing is put in front of it.

Reading resumes only when nothing holds it: neither the write buffer, nor the frame budget, nor
the websocket protocol's own ``pause_reading``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterable
from typing import Any, ClassVar, cast

from netrun_ws.timers import Timer, timers_for
from netrun_ws.transport.frames import FrameBudget, counts_own_frames
from netrun_ws.transport.pending import PendingRequests, RequestLimits

__all__ = ["DRAIN_POLL", "DRAIN_POLL_MAX", "GuardedProtocol", "GuardedTransport", "guard_requests"]

#: Seconds before the first check of a held connection's write buffer (asyncio tells only the
#: protocol when it drains); each further check waits twice as long, up to DRAIN_POLL_MAX, so a
#: client that never reads costs little while it lasts.
DRAIN_POLL = 0.05
DRAIN_POLL_MAX = 1.0

TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\nconnection: close\r\n\r\nRequest Timeout\n"
)


#: The base class's own extra-info dict, never read (get_extra_info is passed on): one for all.
_NO_EXTRA: dict[str, Any] = {}


class GuardedTransport(asyncio.Transport):
    """The socket's transport as the protocols see it: tells its :class:`GuardedProtocol` when
    the pending request is answered or upgraded, and then holds reading while writes back up."""

    __slots__ = (
        "_guard",
        "_held",
        "_high",
        "_loop",
        "_low",
        "is_closing",
        "protocol_paused",
        "transport",
    )

    def __init__(self, transport: asyncio.Transport, guard: GuardedProtocol) -> None:
        super().__init__(_NO_EXTRA)  # get_extra_info asks the socket's transport
        self.transport = transport
        self._guard: GuardedProtocol | None = guard
        self._loop = guard.loop
        # Why reading is held, each reason independent of the others: writes backed up, the
        # protocol's own pause_reading, and (FrameBudget.spent) the frame budget. No more
        # state than that: an idle connection costs the same with or without a budget.
        self._held = False
        self.protocol_paused = False
        self._low, self._high = transport.get_write_buffer_limits()
        # The socket transport's own method, not a method passing the call on: asked before
        # every corked flush, once per recipient of a broadcast.
        self.is_closing = transport.is_closing  # type: ignore[method-assign]

    def write(self, data: bytes | bytearray | memoryview) -> None:
        # A plain method, not one chosen per state and stored on the instance: a bound method
        # kept by its own object is a reference cycle, which only the cyclic collector frees.
        if self._guard is not None:  # pending until answered or upgraded
            self._guard.settle()
            self.transport.write(data)
            return
        transport = self.transport
        transport.write(data)
        if not self._held and transport.get_write_buffer_size() > self._high:
            self._held = True
            self.sync_reading()
            self._loop.call_later(DRAIN_POLL, self._check_drained, DRAIN_POLL)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        guard, self._guard = self._guard, None
        rate = 0.0
        if guard is not None:
            # The HTTP protocol is done: nothing here may keep it (and its parser) alive.
            guard.upgraded()
            rate = guard.pending.limits.frames_per_second
        if rate and not counts_own_frames(protocol):
            protocol = FrameBudget(protocol, self, rate, self._loop)  # type: ignore[arg-type]
        self.transport.set_protocol(protocol)

    def _frame_budget(self) -> FrameBudget | None:
        protocol = self.transport.get_protocol()
        return protocol if type(protocol) is FrameBudget else None

    # -- upgraded: reading held while writes back up (see write)

    def _check_drained(self, waited: float) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > self._low:
            delay = min(2 * waited, DRAIN_POLL_MAX)
            self._loop.call_later(delay, self._check_drained, delay)
            return
        self._held = False
        self.sync_reading()

    def pause_reading(self) -> None:
        self.protocol_paused = True
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.protocol_paused = False
        budget = self._frame_budget()
        if budget is not None:
            budget.resume()  # what the budget allows of a read that waited
        self.sync_reading()

    def sync_reading(self) -> None:
        """Pause or resume reading from the socket: paused while any reason holds it (both
        are no-ops when already so, in asyncio and uvloop)."""
        if self._held or self.protocol_paused:
            self.transport.pause_reading()
            return
        budget = self._frame_budget()
        if budget is not None and budget.spent:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    # -- the rest is the socket's transport

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def close(self) -> None:
        self.transport.close()

    def abort(self) -> None:
        self.transport.abort()

    def is_reading(self) -> bool:
        return self.transport.is_reading()

    def get_protocol(self) -> asyncio.BaseProtocol:
        budget = self._frame_budget()
        return budget.inner if budget is not None else self.transport.get_protocol()  # type: ignore[return-value]

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.transport.set_write_buffer_limits(high, low)
        self._low, self._high = self.transport.get_write_buffer_limits()

    def write_eof(self) -> None:
        self.transport.write_eof()

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()


class GuardedProtocol(asyncio.Protocol):
    """The HTTP protocol uvicorn serves with (:attr:`inner_class`), from TCP accept on: a new
    connection is admitted by :attr:`pending` or closed, and a pending one has a deadline."""

    inner_class: ClassVar[type[asyncio.Protocol]]
    #: Whether :attr:`inner_class` takes the event loop as ``_loop`` (uvicorn's protocols do).
    inner_takes_loop: ClassVar[bool] = False
    pending: ClassVar[PendingRequests]

    __slots__ = ("_inner", "_ip", "_settings", "_timer", "_transport", "loop")

    def __init__(self, **settings: Any) -> None:
        # uvicorn's keyword arguments for the HTTP protocol (config, server_state, ...): it is
        # built only once the connection is admitted.
        self._settings: dict[str, Any] | None = settings
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: Timer | None = None
        self._ip = ""
        self.loop: asyncio.AbstractEventLoop = settings.get("_loop") or asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport: asyncio's, or uvloop's (which is no asyncio.Transport subclass).
        transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        ip = self._ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self._transport = transport
        if not self.pending.admit(self, ip):
            transport.abort()  # nothing read, nothing to answer: it goes at once
            return
        self._arm()
        assert self._settings is not None
        if self.inner_takes_loop:
            # uvicorn's protocols look the loop up themselves otherwise: a getpid() system call
            # each (asyncio checks that the running loop belongs to this process).
            self._settings.setdefault("_loop", self.loop)
        inner = self._inner = self.inner_class(**self._settings)
        self._settings = None
        inner.connection_made(GuardedTransport(transport, self))

    def data_received(self, data: bytes) -> None:
        inner = self._inner
        if inner is None:
            return
        if self._timer is None:  # a kept-alive connection's next request begins
            self.pending.add(self, self._ip)
            self._arm()
        inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.settle()
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def _arm(self) -> None:
        # On the loop's shared timer heap: nearly every request is answered or upgraded long
        # before its limit, and cancelling there is a flag, not a loop timer torn down.
        timers = timers_for(self.loop)
        self._timer = timers.call_later(self.pending.limits.timeout, _expire_request, self)

    def settle(self) -> None:
        """The pending request was answered or upgraded (or the connection is gone)."""
        timer = self._timer
        if timer is not None:
            timer.cancel()
            self._timer = None
            self.pending.remove(self)

    def upgraded(self) -> None:
        """The connection now belongs to a websocket protocol: let go of the HTTP one."""
        self.settle()
        self._inner = None
        self._transport = None

    def evict(self) -> None:
        """Close at once: newer connections need the room (``limits.max_pending_requests*``)."""
        self.settle()
        if self._transport is not None:
            self._transport.abort()

    def _expired(self) -> None:
        self._timer = None
        self.pending.remove(self)
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(TIMEOUT_RESPONSE)
            transport.close()


def _expire_request(protocol: GuardedProtocol) -> None:
    protocol._expired()


def _takes_loop(protocol_class: type[asyncio.Protocol]) -> bool:
    try:
        return "_loop" in inspect.signature(protocol_class).parameters
    except (TypeError, ValueError):  # no signature to read: it is not given one
        return False


def guard_requests(config: Any, limits: RequestLimits) -> None:
    """Serve every connection of ``config`` (a ``uvicorn.Config``) through
    :class:`GuardedProtocol` with ``limits``. Loads the config (uvicorn's server then uses it as
    it is) to wrap the HTTP protocol class its ``http`` setting names."""
    if not config.loaded:
        config.load()
    inner: type[asyncio.Protocol] = config.http_protocol_class
    config.http_protocol_class = type(
        f"Guarded{inner.__name__}",
        (GuardedProtocol,),
        {
            "__slots__": (),
            "inner_class": inner,
            "inner_takes_loop": _takes_loop(inner),
            "pending": PendingRequests(limits),
        },
    )
