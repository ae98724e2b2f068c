"""netrun_ws/fast_records.py: the per-message records built without the frozen dataclasses'
``__init__`` are the same records: the same class, equal, hashed alike, as frozen."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from netrun_ws import fast_records
from netrun_ws.store import Envelope, Position, PublishResult


def test_this_python_builds_them_through_the_plain_objects() -> None:
    # The guard: fails if a Python release refuses the class assignment (the builders would
    # then be the constructors, correct but as slow as before).
    assert fast_records._builds_alike()
    assert fast_records.envelope is not Envelope
    assert fast_records.position is not Position
    assert fast_records.publish_result is not PublishResult


@pytest.mark.parametrize(
    ("built", "made"),
    [
        (fast_records.envelope("user", "bob", "{}"), Envelope("user", "bob", "{}")),
        (
            fast_records.envelope(
                "room", "lobby", b"\x00", frozenset({"u"}), frozenset({"c"}), Position(2, "e")
            ),
            Envelope(
                "room", "lobby", b"\x00", frozenset({"u"}), frozenset({"c"}), Position(2, "e")
            ),
        ),
        (fast_records.envelope("broadcast", None, "hi"), Envelope("broadcast", None, "hi")),
        (fast_records.position(7, "epoch"), Position(7, "epoch")),
        (fast_records.publish_result(3), PublishResult(3)),
        (fast_records.publish_result(3, 1), PublishResult(3, 1)),
    ],
)
def test_a_built_record_is_the_record_the_constructor_makes(built: object, made: object) -> None:
    assert type(built) is type(made)
    assert built == made and hash(built) == hash(made) and repr(built) == repr(made)
    assert dataclasses.asdict(built) == dataclasses.asdict(made)  # type: ignore[call-overload]
    assert pickle.loads(pickle.dumps(built)) == made
    for field in dataclasses.fields(made):  # type: ignore[arg-type]
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(built, field.name, "changed")
    # Another name fails as on a constructed one (3.11's frozen slots dataclasses: TypeError).
    failures = []
    for record in (built, made):
        with pytest.raises(Exception) as failure:
            record.extra = 1  # type: ignore[attr-defined]
        failures.append(failure.type)
    assert failures[0] is failures[1]


def test_a_built_envelope_is_replaced_like_any_other() -> None:
    built = fast_records.envelope("user", "bob", "{}")
    moved = dataclasses.replace(built, payload='{"pos":1}', pos=Position(1, "e"))
    assert moved == Envelope("user", "bob", '{"pos":1}', pos=Position(1, "e"))
