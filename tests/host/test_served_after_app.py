"""On netrun-ws's protocol a welcomed connection's frames are served in a task of its own, and the
ASGI app's call returns (``serve_after_app``): an idle connection keeps that task's coroutine, not
the app's await chain (uvicorn's task, its middleware, ``NetrunApp``, ``serve_websocket``).

The connection must behave exactly as before: frames served in order, closes from either side
and the server's shutdown reach ``on_disconnect`` once, and uvicorn's shutdown waits for the
serving task as it waited for the app's.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from netrun_ws.testing import Serve, serve
from tests.host.helpers import ECHO, RECORDING, base_config


def _tasks_by_coroutine() -> Counter[str]:
    return Counter(
        getattr(task.get_coro(), "__qualname__", "?")
        for task in asyncio.all_tasks()
        if not task.done()
    )


async def test_an_idle_connection_keeps_its_serving_task_and_not_the_apps_chain(
    served_ws_protocol: str, netrun_serve: Serve
) -> None:
    server = await netrun_serve(base_config(plugins=[ECHO]))
    clients = [await server.connect(f"u{index}") for index in range(5)]
    await asyncio.sleep(0.05)  # every app call has returned by now
    tasks = _tasks_by_coroutine()
    if served_ws_protocol == "netrun":
        assert tasks["Host._serve_frames"] == 5
        assert tasks["NetrunWebSocketProtocol.run_asgi"] == 0
    else:  # uvicorn's protocol: plain ASGI, the app's call lasts as long as the connection
        assert tasks["Host._serve_frames"] == 0
        assert tasks["WebSocketsSansIOProtocol.run_asgi"] == 5
    for index, client in enumerate(clients):  # still served, in order
        for seq in range(3):
            await client.send({"type": "echo", "seq": seq, "text": f"{index}-{seq}"})
        for seq in range(3):
            assert (await client.expect("echo"))["text"] == f"{index}-{seq}"
    await clients[0].close()
    await asyncio.sleep(0.05)
    assert _tasks_by_coroutine()["Host._serve_frames"] == (
        4 if served_ws_protocol == "netrun" else 0
    )


async def test_every_close_reaches_on_disconnect_once_and_shutdown_waits_for_the_tasks(
    served_ws_protocol: str,
) -> None:
    async with serve(base_config(plugins=[RECORDING])) as server:
        host = server.host
        by_client = await server.connect("leaves")
        by_server = await server.connect("closed")
        at_shutdown = [await server.connect(f"open{index}") for index in range(3)]
        await by_client.close()
        closed_id = by_server.connection_id
        await host.disconnect(closed_id, 4001, "bye")
        await by_server.expect_close(4001)
        assert not at_shutdown[0].close_code
    # The server has stopped: uvicorn waited for every serving task, so each connection's
    # on_disconnect has fired, once.
    codes = [detail for name, detail in host.state["events"] if name == "on_disconnect"]
    assert len(codes) == 5
    assert codes[:2] == [1000, 4001]
    assert not _tasks_by_coroutine()["Host._serve_frames"]
