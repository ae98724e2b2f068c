"""The exactly-once audit of the proof tests must catch every way a stream can be wrong."""

from __future__ import annotations

from tests.proof.ledger import GapSeen, Ledger, Tick, audit


def ledger(*entries: Tick | GapSeen) -> Ledger:
    return Ledger(list(entries))


def ticks(room: str, *numbers: int, epoch: str = "e1") -> list[Tick]:
    return [Tick(room, n, epoch) for n in numbers]


def test_a_complete_stream_passes() -> None:
    result = audit(ledger(*ticks("a", 1, 2), *ticks("b", 1), *ticks("a", 3)), {"a": 3, "b": 1})
    assert (result.problems, result.holes, result.lost) == ([], 0, 0)


def test_a_duplicate_and_a_disorder_are_caught() -> None:
    assert audit(ledger(*ticks("a", 1, 2, 2)), {"a": 2}).problems == [
        "a: 2 after 2 (duplicate or disorder)"
    ]
    assert (
        "a: 1 after 2 (duplicate or disorder)"
        in audit(ledger(*ticks("a", 2, 1)), {"a": 2}).problems
    )


def test_a_silent_hole_is_caught_and_a_gap_of_another_room_does_not_cover_it() -> None:
    stream = ledger(*ticks("a", 1), GapSeen("b", "out_of_history"), *ticks("a", 4))
    assert audit(stream, {"a": 4}).problems == ["a: 2..3 lost with no gap reported"]
    assert audit(ledger(*ticks("a", 2)), {"a": 2}).problems == ["a: 1..1 lost with no gap reported"]


def test_a_gap_between_the_two_sides_covers_the_hole_once() -> None:
    stream = ledger(*ticks("a", 1), GapSeen("a", "out_of_history"), *ticks("a", 5, 7))
    result = audit(stream, {"a": 7})
    assert result.problems == ["a: 6..6 lost with no gap reported"]
    assert (result.holes, result.lost) == (1, 3)


def test_a_missing_tail_is_caught() -> None:
    assert audit(ledger(*ticks("a", 1, 2)), {"a": 3}).problems == [
        "a: ends at 2, 3 was published last"
    ]


def test_uncertain_numbers_may_be_missing_but_not_doubled() -> None:
    assert audit(ledger(*ticks("a", 1, 3)), {"a": 3}, uncertain={"a": {2}}).problems == []
    assert audit(ledger(*ticks("a", 1, 4)), {"a": 4}, uncertain={"a": {2}}).problems == [
        "a: 2..3 lost with no gap reported"
    ]
    assert audit(ledger(*ticks("a", 1, 2, 2)), {"a": 2}, uncertain={"a": {2}}).problems != []


def test_epochs_are_listed_in_order_of_appearance() -> None:
    stream = ledger(*ticks("a", 1, 2), *ticks("a", 3, epoch="e2"), *ticks("b", 1, epoch="x"))
    assert stream.epochs("a") == ["e1", "e2"]
