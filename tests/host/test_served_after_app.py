"""On netrun-ws's protocol a welcomed connection's frames are served in tasks of their own and the
ASGI app's call returns (``serve_after_app``); a connection with no frame waiting whose last two
frames came over ``PARK_AFTER`` apart *parks*: its message loop returns and it keeps no coroutine
until the next event wakes it in a new task. A busy connection keeps its loop waiting in place.

The connection must behave exactly as before: frames served in order, the rate limit and the
count of invalid messages carried across parks, closes from either side and the server's
shutdown reaching ``on_disconnect`` once, and uvicorn's shutdown waiting for the serving tasks as
it waited for the app's.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from netrun_ws.codes import CloseCode
from netrun_ws.runtime import message_loop
from netrun_ws.testing import Serve, serve
from tests.host.helpers import ECHO, RECORDING, base_config

SERVING = "Host._serve_frames"


def _tasks_by_coroutine() -> Counter[str]:
    return Counter(
        getattr(task.get_coro(), "__qualname__", "?")
        for task in asyncio.all_tasks()
        if not task.done()
    )


async def _settle() -> None:
    await asyncio.sleep(0.05)  # the server's side of the loopback has run by then


async def test_idle_connections_keep_no_task_and_a_frame_wakes_one(
    served_ws_protocol: str, netrun_serve: Serve
) -> None:
    server = await netrun_serve(base_config(plugins=[ECHO]))
    clients = [await server.connect(f"u{index}") for index in range(5)]
    await _settle()
    tasks = _tasks_by_coroutine()
    if served_ws_protocol == "netrun":
        assert tasks[SERVING] == 0
        assert tasks["NetrunWebSocketProtocol.run_asgi"] == 0
    else:  # uvicorn's protocol: plain ASGI, the app's call lasts as long as the connection
        assert tasks["WebSocketsSansIOProtocol.run_asgi"] == 5
    for index, client in enumerate(clients):  # served, in order
        for seq in range(3):
            await client.send({"type": "echo", "seq": seq, "text": f"{index}-{seq}"})
        for seq in range(3):
            assert (await client.expect("echo"))["text"] == f"{index}-{seq}"
    await clients[0].close()
    await _settle()
    # The four others sent three frames in a row: their loops wait in place (next test).
    tasks = _tasks_by_coroutine()
    assert tasks[SERVING] + tasks["WebSocketsSansIOProtocol.run_asgi"] == 4


async def test_a_busy_connection_waits_in_place_and_parks_once_its_frames_slow_down(
    served_ws_protocol: str, netrun_serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(message_loop, "PARK_AFTER", 0.3)
    server = await netrun_serve(base_config(plugins=[ECHO]))
    client = await server.connect("busy")

    def serving() -> int:
        # uvicorn's protocol: the app's call (and its loop) lasts as long as the connection.
        if served_ws_protocol == "uvicorn":
            return _tasks_by_coroutine()["WebSocketsSansIOProtocol.run_asgi"]
        return _tasks_by_coroutine()[SERVING]

    for seq in range(4):  # frames 50 ms apart (the first just after the welcome): it stays
        await client.send({"type": "echo", "seq": seq})
        await client.expect("echo")
        await _settle()
        assert serving() == 1, seq
    await asyncio.sleep(0.4)  # then a pause longer than PARK_AFTER
    await client.send({"type": "echo", "seq": 9})
    await client.expect("echo")
    await _settle()
    assert serving() == (0 if served_ws_protocol == "netrun" else 1)


@pytest.mark.parametrize("park_after", [0.0, 60.0])
async def test_the_rate_limit_and_the_error_count_go_on_across_parks(
    netrun_serve: Serve, monkeypatch: pytest.MonkeyPatch, park_after: float
) -> None:
    # 0: the loop parks after every frame; 60: never after the first (the control).
    monkeypatch.setattr(message_loop, "PARK_AFTER", park_after)
    limits = {"messages_per_second": 2}
    server = await netrun_serve(base_config(plugins=[ECHO], limits=limits))
    client = await server.connect("limited")
    for seq in range(2):  # the burst of 2, one frame at a time, each answered
        await client.send({"type": "echo", "seq": seq})
        await client.expect("echo")
    await client.send({"type": "echo", "seq": 2})
    await client.expect_error("rate_limited")
    limits = {"messages_per_second": 0, "max_consecutive_errors": 3}
    server = await netrun_serve(base_config(plugins=[ECHO], limits=limits))
    other = await server.connect("errors")
    for _ in range(2):
        await other.send("{not json")
        await other.expect_error("invalid_json")
    await other.send("{not json")
    await other.expect_close(CloseCode.TOO_MANY_INVALID_MESSAGES)


async def test_every_close_reaches_on_disconnect_once_and_shutdown_waits_for_the_tasks(
    served_ws_protocol: str,
) -> None:
    async with serve(base_config(plugins=[RECORDING])) as server:
        host = server.host
        by_client = await server.connect("leaves")
        by_server = await server.connect("closed")
        busy = await server.connect("busy")
        at_shutdown = [await server.connect(f"open{index}") for index in range(2)]
        await by_client.close()
        await host.disconnect(by_server.connection_id, 4001, "bye")
        await by_server.expect_close(4001)
        await busy.send({"type": "shout", "text": "a"})  # its loop waits in place
        await busy.send({"type": "shout", "text": "b"})
        assert (await busy.expect("shout"))["text"] == "A"
        assert (await busy.expect("shout"))["text"] == "B"
        assert not at_shutdown[0].close_code
    # The server has stopped: uvicorn waited for every serving task, so each connection's
    # on_disconnect has fired, once.
    codes = [detail for name, detail in host.state["events"] if name == "on_disconnect"]
    assert len(codes) == 5
    assert codes[:2] == [1000, 4001]
    assert not _tasks_by_coroutine()[SERVING]
