"""What one client received, and the exactly-once check over it (pure logic, unit-tested).

A client's ledger holds, in stream order, the ``tick`` messages of its rooms (room, sequence
number, epoch) and the gaps it was told about. :func:`audit` says what is wrong with it: a
sequence number seen twice or out of order, a hole (missing numbers) with no gap of that room
reported between its two sides, a tail that never arrived.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Tick:
    room: str
    n: int
    epoch: str | None


@dataclass(frozen=True, slots=True)
class GapSeen:
    room: str  # the channel without its "room:" prefix
    reason: str


@dataclass
class Ledger:
    entries: list[Tick | GapSeen] = field(default_factory=list)

    def ticks(self, room: str) -> list[int]:
        return [e.n for e in self.entries if isinstance(e, Tick) and e.room == room]

    def last(self, room: str) -> int:
        ticks = self.ticks(room)
        return ticks[-1] if ticks else 0

    def gaps(self, room: str | None = None) -> list[GapSeen]:
        return [e for e in self.entries if isinstance(e, GapSeen) and room in (None, e.room)]

    def epochs(self, room: str) -> list[str | None]:
        """The room's epochs in the order they first appeared."""
        seen: list[str | None] = []
        for entry in self.entries:
            if isinstance(entry, Tick) and entry.room == room and entry.epoch not in seen:
                seen.append(entry.epoch)
        return seen


@dataclass
class Audit:
    problems: list[str] = field(default_factory=list)
    holes: int = 0  # holes, each covered by a gap
    lost: int = 0  # sequence numbers inside those holes


def audit(
    ledger: Ledger,
    last: Mapping[str, int],
    uncertain: Mapping[str, Collection[int]] | None = None,
) -> Audit:
    """Check ``ledger`` against the rooms it is in (``last``: room -> the last number published
    to it, numbering from 1). ``uncertain``: per room, numbers whose publish may or may not have
    happened (a request whose answer was lost): a hole made only of those needs no gap."""
    result = Audit()
    for room, final in last.items():
        maybe = (uncertain or {}).get(room, ())
        previous = 0
        gap_since = False
        for entry in ledger.entries:
            if isinstance(entry, GapSeen):
                gap_since = gap_since or entry.room == room
                continue
            if entry.room != room:
                continue
            if entry.n <= previous:
                result.problems.append(
                    f"{room}: {entry.n} after {previous} (duplicate or disorder)"
                )
                continue
            missing = range(previous + 1, entry.n)
            if missing:
                if gap_since:
                    result.holes += 1
                    result.lost += len(missing)
                elif any(n not in maybe for n in missing):
                    result.problems.append(
                        f"{room}: {missing.start}..{missing.stop - 1} lost with no gap reported"
                    )
            previous = entry.n
            gap_since = False
        if previous != final:
            result.problems.append(f"{room}: ends at {previous}, {final} was published last")
    return result
