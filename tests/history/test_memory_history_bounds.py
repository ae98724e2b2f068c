"""The memory store's history stays bounded however many channels come and go (pure logic: the
sweep is called with a clock moved forward instead of waiting)."""

from __future__ import annotations

import json
import random
import time
import tracemalloc

from netrun_ws.config import HistoryConfig
from netrun_ws.history import MemoryHistory
from netrun_ws.store import Envelope, Position

SESSION_TTL = 3600.0


def _history() -> MemoryHistory:
    return MemoryHistory(HistoryConfig(rooms_ttl=300, users_ttl=300), SESSION_TTL)


def _send(history: MemoryHistory, user: str, n: int) -> Envelope:
    return history.position(Envelope("user", user, json.dumps({"type": "dm", "n": n})))


def test_entries_older_than_the_ttl_are_dropped_by_the_sweep() -> None:
    history = _history()
    for n in range(5):
        _send(history, "alice", n)
    start = Position(0, history.top("user:alice").epoch)
    assert len(history.since("user:alice", start, 100, 1 << 20).messages) == 5
    history.sweep(time.time() + 301)
    # The top stays (offsets keep growing); what is older than the ttl is gone, and says so.
    assert history.top("user:alice").offset == 5
    assert history.since("user:alice", start, 100, 1 << 20).status == "out_of_history"
    _send(history, "alice", 5)  # emptied by the sweep, the channel keeps messages again
    assert len(history.since("user:alice", Position(5, start.epoch), 100, 1 << 20).messages) == 1


def test_a_channel_without_messages_holds_no_buffer() -> None:
    # Every connection's user channel is made at its welcome and most never get a message: an
    # empty deque each would be about 600 bytes of an idle connection's memory.
    history = _history()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for user in range(1000):
            history.record_join(f"session-{user}", f"user:u{user}")
        per_channel = (tracemalloc.get_traced_memory()[0] - before) / 1000
    finally:
        tracemalloc.stop()
    # About 650 bytes: the channel, its session's join record, their names (1,400 with a deque).
    assert per_channel < 1000, per_channel


def test_idle_channels_are_dropped_and_come_back_in_a_new_epoch() -> None:
    history = _history()
    for user in range(1000):
        _send(history, f"u{user}", 0)
    old = _send(history, "bob", 1).pos
    assert old is not None and history.channel_count == 1001
    history.sweep(time.time() + 100)  # not idle long enough: all kept
    assert history.channel_count == 1001
    history.sweep(time.time() + SESSION_TTL + 1)
    assert history.channel_count == 0
    again = _send(history, "bob", 2).pos
    assert again is not None and again.offset == 1 and again.epoch != old.epoch
    # A position from before the drop is a gap, never mistaken for one of the new history.
    assert history.since("user:bob", old, 100, 1 << 20).status == "epoch_changed"
    assert history.since("user:carol", old, 100, 1 << 20).status == "epoch_changed"


def test_a_channel_used_within_the_session_ttl_is_kept() -> None:
    history = _history()
    history.record_join("session-1", "user:alice")  # a join makes and uses the channel
    first = _send(history, "alice", 0).pos
    assert first is not None
    history.sweep(time.time() + SESSION_TTL - 10)
    assert history.channel_count == 1
    assert history.top("user:alice") == Position(1, first.epoch)


def test_join_records_answer_as_a_dict_per_session_whatever_their_shape() -> None:
    # A session of one channel is kept without a dict of its own; several get one. Either way
    # session_channels answers what a plain dict of joins would.
    rng = random.Random(14)
    history = _history()
    model: dict[str, dict[str, Position]] = {}
    for _ in range(3000):
        session, channel = f"s{rng.randrange(5)}", f"room:r{rng.randrange(4)}"
        if rng.random() < 0.3:
            _send(history, "someone", 0)  # other channels move on meanwhile
            history.position(Envelope("room", channel[5:], '{"n":1}'))
        if rng.random() < 0.6:
            top = history.record_join(session, channel)
            assert top == history.top(channel)
            model.setdefault(session, {})[channel] = top
        else:
            history.forget_join(session, channel)
            model.get(session, {}).pop(channel, None)
        for name in (f"s{n}" for n in range(5)):
            assert history.session_channels(name) == model.get(name, {})
    history.sweep(time.time() + SESSION_TTL + 1)  # every session's records expire
    assert all(history.session_channels(f"s{n}") == {} for n in range(5))
