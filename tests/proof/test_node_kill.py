"""Proof (issue 14 §4): two real `netrun-ws run` nodes on one private redis-server, 100 Python
clients spread over both (each knows both URLs) in two of 20 rooms, a publisher pushing over
1,000 numbered room messages per second through the surviving node; one node is killed with
SIGKILL mid-stream. Its clients move to the other node and every client ends with every message
of its rooms exactly once, in order. With a history too small to cover the outage, every loss
is a gap the client was told about, never a silent hole.

Of timing, only the stream's rate is asserted (at least the issue's 1,000 messages per second;
the pump aims at 1,200 and catches up after a stall); the waits are generous deadlines, and the
recovery times are printed (pytest -s) and measured properly by `bench/run.py --only recovery`.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.proof.harness import Listener, Pump, audience, until, write_config, ws_url
from tests.proof.ledger import audit
from tests.support.cli_server import RunningServer, run_cli
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(180)

CLIENTS = 100
ROOMS = [f"r{k}" for k in range(20)]
RATE = 1200.0  # messages per second over all rooms


@contextlib.asynccontextmanager
async def two_nodes(
    tmp_path: Path, redis: RedisServer, **config: Any
) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    path = write_config(tmp_path, redis=True, **config)
    env = {"REDIS_URL": redis.url}
    async with run_cli(path, env=env, cwd=tmp_path) as a, run_cli(path, env=env, cwd=tmp_path) as b:
        yield a, b


async def stream_through_a_kill(
    a: RunningServer, b: RunningServer
) -> tuple[list[Listener], dict[str, int], Pump]:
    """Listeners on both nodes; stream; SIGKILL ``a``; stream on; every client up to the end."""

    def urls(i: int) -> list[str]:  # even clients start on a, odd ones on b
        return [ws_url(a), ws_url(b)] if i % 2 == 0 else [ws_url(b), ws_url(a)]

    async with audience(CLIENTS, ROOMS, urls) as listeners:
        pump = Pump(b, ROOMS, RATE)
        await until(lambda: all(x.ticks_in_every_room() >= 30 for x in listeners), 60, "stream")
        killed_at = time.monotonic()
        a.process.send_signal(signal.SIGKILL)
        await a.process.wait()
        moved = listeners[0::2]
        await until(lambda: all(len(x.welcomes) >= 2 for x in moved), 60, "clients moved")
        back_in = time.monotonic() - killed_at
        marks = {id(x): x.ticks_in_every_room() for x in listeners}
        await until(
            lambda: all(x.ticks_in_every_room() >= marks[id(x)] + 30 for x in listeners),
            60,
            "stream after the kill",
        )
        last = await pump.finish()
        await until(lambda: all(x.has_reached(last) for x in listeners), 90, "every last message")
        print(
            f"\n{pump.sent} messages at {pump.rate:.0f}/s; "
            f"{len(moved)} clients reconnected within {back_in:.2f}s of the kill"
        )
    return listeners, last, pump


async def test_every_client_gets_every_message_once_in_order_across_a_sigkill(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with two_nodes(tmp_path, redis_server, history={"rooms_size": 20000}) as (a, b):
        listeners, last, pump = await stream_through_a_kill(a, b)
    assert pump.sent >= 1000 and pump.rate >= 1000, (pump.sent, pump.rate)
    for listener in listeners:
        result = audit(listener.ledger, {room: last[room] for room in listener.rooms})
        assert result.problems == [], (listener.user, result.problems)
        assert listener.ledger.gaps() == []
    moved = listeners[0::2]
    for listener in moved:  # on b now, resumed there: the session and its rooms survived
        assert listener.welcomes == [False, True]
        assert listener.client.url == ws_url(b)
    for listener in listeners[1::2]:
        assert listener.welcomes == [False]
    assert sum(x.replayed for x in moved) > 0  # the kill did cost them messages: recovered


async def test_with_a_history_too_small_every_loss_is_a_reported_gap(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # rooms_size 2 and at least 0.25 s before a reconnect (initial_delay 0.5, jitter to half):
    # about 60 messages a room per second cannot be covered, so the moved clients must lose some.
    config = {"history": {"rooms_size": 2}, "initial_delay": 0.5}
    async with two_nodes(tmp_path, redis_server, **config) as (a, b):
        listeners, last, pump = await stream_through_a_kill(a, b)
    assert pump.rate >= 1000, pump.rate
    holes = 0
    for listener in listeners:
        result = audit(listener.ledger, {room: last[room] for room in listener.rooms})
        assert result.problems == [], (listener.user, result.problems)
        holes += result.holes
    for listener in listeners[0::2]:
        reasons = {gap.reason for gap in listener.ledger.gaps()}
        assert "out_of_history" in reasons, listener.ledger.gaps()
    assert holes > 0
