"""The ``ping`` heartbeat plugin with passes run by the test, one at a time."""

from __future__ import annotations

import functools

import pytest

from netrun_ws.builtin import heartbeat_ping
from netrun_ws.heartbeat import HeartbeatMonitor
from netrun_ws.host import Host
from tests.support.manual_time import ManualTime

__all__ = ["heartbeat_by_hand", "passes_until_gone"]


def heartbeat_by_hand(monkeypatch: pytest.MonkeyPatch) -> ManualTime:
    """Make the ``ping`` heartbeat plugin run a pass only when the test calls ``step()``.

    The plugin builds its HeartbeatMonitor in ``configure``: call this before ``create_app``.
    Only the loop's sleep is replaced; the monitor still reads the wall clock (the host stamps
    activity with it), so such tests set a ``timeout`` no run comes near and let
    ``max_missed`` decide, pass by pass, whatever the machine's speed.
    """
    passes = ManualTime()
    by_hand = functools.partial(HeartbeatMonitor, sleep=passes.sleep)
    monkeypatch.setattr(heartbeat_ping, "HeartbeatMonitor", by_hand)
    return passes


async def passes_until_gone(passes: ManualTime, host: Host, connection_id: str) -> int:
    """Run heartbeat passes until the host no longer has ``connection_id``; return how many.

    A pass's callbacks (the stale one closes the connection) have run when ``step()`` returns.
    """
    for count in range(1, 11):
        await passes.step()
        if host.connection(connection_id) is None:
            return count
    raise AssertionError(f"{connection_id} still connected after 10 heartbeat passes")
