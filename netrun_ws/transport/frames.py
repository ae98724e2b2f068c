"""A frame budget for websocket protocols that keep none (``limits.frames_per_second`` under
``server.ws_protocol: uvicorn`` and on the fence's fallback).

netrun-ws's own protocol counts the frames it parses. uvicorn's does not, so
:class:`netrun_ws.transport.guard.GuardedTransport` puts a :class:`FrameBudget` between the
socket's transport and such a protocol at the upgrade. It reads only RFC 6455 frame headers
(:class:`FrameScanner`: 2 to 14 bytes each, the payloads skipped, never copied nor unmasked) and
counts every frame, control or data, in a token bucket. The protocol gets only the frames the
budget allows; past it, reading from the socket is held and the rest of the read waits here
until the budget refills.
"""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from netrun_ws.transport.guard import GuardedTransport

__all__ = ["FrameBudget", "FrameScanner", "counts_own_frames"]


def counts_own_frames(protocol: object) -> bool:
    """Whether ``protocol`` keeps its own frame budget (a ``counts_frames`` attribute that is
    true, as netrun-ws's protocol has): no :class:`FrameBudget` goes in front of it."""
    return bool(getattr(protocol, "counts_frames", False))


class FrameScanner:
    """Finds where frames begin in a websocket byte stream fed in arbitrary chunks.

    Keeps the part of a header cut by a chunk's end (at most 13 bytes) and how many payload
    bytes of the current frame are still to come; payload bytes are only skipped.
    """

    __slots__ = ("_head", "_left")

    def __init__(self) -> None:
        self._head = b""  # the start of a header the previous chunk cut (its frame is counted)
        self._left = 0  # payload bytes of the current frame still to come

    def scan(self, data: bytes, budget: int) -> tuple[int, int]:
        """Scan ``data``, letting at most ``budget`` new frames begin. Returns where to cut it
        (``len(data)`` when all of it fits) and how many frames began before the cut; the
        scanner then stands at the cut, so the next call starts with ``data[cut:]``."""
        end = len(data)
        pos = self._left  # past the payload the last chunk cut (perhaps past this one too)
        if self._head:  # finish the header the last chunk cut, then skip its payload
            cut = self._head
            head = cut + data[:13]
            size = _header_size(head)
            if size > len(head):
                self._head = head
                return end, 0
            self._head = b""
            pos = size - len(cut) + _payload_length(head)
        frames = 0
        # One pass over the headers, inlined: this runs for every frame a client sends.
        while pos < end:
            if frames == budget:
                self._left = 0
                return pos, frames
            frames += 1
            if pos + 2 > end:
                break
            second = data[pos + 1]
            length = second & 0x7F
            size = 2 if second < 0x80 else 6
            if length < 126:
                if pos + size > end:
                    break
            else:
                size += 2 if length == 126 else 8
                if pos + size > end:
                    break
                length = int.from_bytes(data[pos + 2 : pos + size - (4 if second >= 0x80 else 0)])
            pos += size + length
        else:
            self._left = pos - end
            return end, frames
        self._head = data[pos:]  # a header cut by the chunk's end: its frame is counted
        self._left = 0
        return end, frames


def _header_size(head: bytes) -> int:
    """The length of the header beginning ``head`` (at least 2, assumed when only the first
    byte is there)."""
    if len(head) < 2:
        return 2
    second = head[1]
    length = second & 0x7F
    extended = 2 if length == 126 else 8 if length == 127 else 0
    return 2 + extended + (4 if second & 0x80 else 0)


def _payload_length(head: bytes) -> int:
    """The payload length a whole header ``head`` declares."""
    length = head[1] & 0x7F
    if length == 126:
        return int.from_bytes(head[2:4])
    if length == 127:
        return int.from_bytes(head[2:10])
    return length


class _Inner(Protocol):
    """What :class:`FrameBudget` forwards to: the websocket protocol (an asyncio protocol)."""

    def data_received(self, data: bytes) -> None: ...
    def eof_received(self) -> bool | None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...


class FrameBudget(asyncio.Protocol):
    """The socket transport's protocol in front of a websocket protocol that counts no frames.

    A token bucket of ``rate`` frames per second holding one second's worth (the same
    semantics as netrun-ws's protocol). A read is handed on up to the first frame the budget
    does not cover; then the budget is :attr:`spent` (the guard holds reading), the rest waits
    here, and a timer hands it on when a frame's worth has refilled. While the websocket
    protocol itself has paused reading, the rest waits for its ``resume_reading``.
    """

    __slots__ = (
        "_at",
        "_guard",
        "_loop",
        "_rate",
        "_rest",
        "_scanner",
        "_timer",
        "_tokens",
        "inner",
        "spent",
    )

    def __init__(
        self, inner: _Inner, guard: GuardedTransport, rate: float, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.inner = inner
        self._guard = guard
        self._loop = loop
        self._rate = rate
        self._tokens = rate
        self._at = monotonic()
        self._scanner = FrameScanner()
        self._rest = b""  # the part of a read past the budget
        self._timer: asyncio.TimerHandle | None = None
        #: Whether reading is held for the budget: exactly while a refill timer is set.
        self.spent = False

    def data_received(self, data: bytes) -> None:
        if self._rest:  # (reading is held: only a transport that reads on would get here)
            self._rest += data
            return
        rate = self._rate
        now = monotonic()  # (cheaper than the loop's time(); only differences count)
        tokens = self._tokens + (now - self._at) * rate
        if tokens > rate:
            tokens = rate
        self._at = now
        cut, frames = self._scanner.scan(data, int(tokens))
        self._tokens = tokens - frames
        if cut < len(data):
            self._rest = data[cut:]
            data = data[:cut]
            self._timer = self._loop.call_later((1 - self._tokens) / rate, self._refilled)
            self.spent = True
            self._guard.transport.pause_reading()
        if data:
            self.inner.data_received(data)

    def _refilled(self) -> None:
        self._timer = None
        if self._guard.is_closing():
            return
        if not self._guard.protocol_paused:
            self.resume()  # (which may spend the budget again, and set a new timer)
        if self._timer is None:
            self.spent = False
            self._guard.sync_reading()  # resumed unless another reason holds it

    def resume(self) -> None:
        """Hand on what waits (the websocket protocol resumed reading, or the budget refilled)."""
        if self._rest and self._timer is None:
            data, self._rest = self._rest, b""
            self.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._rest = b""
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
