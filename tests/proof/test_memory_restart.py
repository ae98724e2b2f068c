"""Proof (issue 14 §4): the exactly-once check on the memory store across a drain (SIGTERM) and
restart of its one `netrun-ws run` node on the same port. The history lived in the process, so
it is gone: the room epochs change, every client is told it lost messages (a gap per room), and
apart from what those gaps cover, each gets every message once, in order."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.proof.harness import HttpPublisher, audience, until, write_config, ws_url
from tests.proof.ledger import audit
from tests.support.cli_server import free_port, run_cli

pytestmark = pytest.mark.timeout(180)

CLIENTS = 40
ROOMS = [f"m{k}" for k in range(10)]


async def test_a_drained_and_restarted_memory_node_reports_the_lost_history_as_gaps(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, redis=False, history={"rooms_size": 20000})
    port = free_port()
    async with run_cli(config, cwd=tmp_path, port=port) as first:
        url = ws_url(first)
        async with audience(CLIENTS, ROOMS, lambda i: [url]) as listeners:
            publisher = HttpPublisher(first, ROOMS)
            await until(lambda: all(x.ticks_in_every_room() >= 5 for x in listeners), 60, "stream")
            first.process.send_signal(signal.SIGTERM)  # drain: 1012 to every client, then exit
            assert await first.process.wait() in (0, -signal.SIGTERM)
            async with run_cli(config, cwd=tmp_path, port=port):
                await until(lambda: all(len(x.welcomes) >= 2 for x in listeners), 60, "reconnects")
                marks = {id(x): x.ticks_in_every_room() for x in listeners}
                await until(
                    lambda: all(x.ticks_in_every_room() >= marks[id(x)] + 5 for x in listeners),
                    60,
                    "stream after the restart",
                )
                last = await publisher.stop()
                await until(lambda: all(x.has_reached(last) for x in listeners), 60, "the end")
    assert publisher.refused > 0  # it did publish into the outage
    for listener in listeners:
        mine = {room: last[room] for room in listener.rooms}
        result = audit(listener.ledger, mine, publisher.uncertain)
        assert result.problems == [], (listener.user, result.problems)
        assert listener.ends[0] == 1012  # drained, not dropped
        assert listener.welcomes == [False, False]  # the session went with the process
        for room in listener.rooms:
            assert [g.reason for g in listener.ledger.gaps(room)] == ["session_lost"]
            before, after = listener.ledger.epochs(room)
            assert before != after
        # the user channel's history went too: its epoch changed
        assert [g.reason for g in listener.ledger.gaps(f"user:{listener.user}")] == [
            "epoch_changed"
        ]
