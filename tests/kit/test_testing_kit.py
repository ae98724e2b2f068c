"""netrun_ws.testing itself: configs from a dict or a YAML file, the client's assertions fail
with a message that says what came instead, refusals, and a teardown that leaves nothing behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from netrun_ws.client import ClientClosed, State
from netrun_ws.testing import (
    Client,
    Serve,
    ServedApp,
    ServerStartError,
    assert_error_reply,
    base_config,
    serve,
)
from tests.host.helpers import ECHO, RECORDING


async def test_a_yaml_config_file_is_served(tmp_path: Path, netrun_serve: Serve) -> None:
    config = tmp_path / "netrun_ws.yaml"
    config.write_text(
        "auth: {plugin: anonymous}\nheartbeat: null\nmetrics: []\nplugins_dir: null\n"
        f"plugins: [{ECHO}]\nlimits: {{messages_per_second: 0}}\n"
    )
    server = await netrun_serve(str(config))
    client = await server.connect("ann")
    echo = await client.request({"type": "echo", "seq": 1, "text": "hi"}, "echo")
    assert echo["text"] == "hi"
    with pytest.raises(TypeError, match="overrides apply to a config dict"):
        await netrun_serve(str(config), plugins=[])


async def test_the_default_fixtures(netrun_client: Client, netrun_server: ServedApp) -> None:
    assert netrun_client.welcome["user_id"] == "alice"
    assert netrun_server.host.connection(netrun_client.connection_id) is not None
    await netrun_client.send("{oops")
    await netrun_client.expect_error("invalid_json")


async def test_assertions_say_what_came_instead(netrun_client: Client) -> None:
    await netrun_client.send({"type": "nope"})
    with pytest.raises(AssertionError, match=r"expected a 'pong' message, got .*unknown_type"):
        await netrun_client.expect("pong")
    await netrun_client.send({"type": "nope"})
    with pytest.raises(AssertionError, match="expected error code 'forbidden'"):
        await netrun_client.expect_error("forbidden")
    with pytest.raises(AssertionError, match="expected an error reply"):
        assert_error_reply({"type": "echo"})
    with pytest.raises(TimeoutError):
        await netrun_client.recv(timeout=0.05)  # nothing was sent: a bounded wait, no hang


async def test_close_codes_and_refusals(netrun_serve: Serve) -> None:
    server = await netrun_serve({"limits": {"max_connections_per_user": 1}})
    first = await server.connect("bob")
    assert await server.refused("bob") == 429
    with pytest.raises(AssertionError, match="accepted the connection"):
        await server.refused("carol")
    refused = await server.connect("not valid", welcome=False)
    with pytest.raises(AssertionError, match="expected close code 4000, got 1008"):
        await refused.expect_close(4000)
    await server.host.disconnect(first.connection_id, 4100, "bye")
    assert await first.expect_close(4100, "bye") == 4100
    with pytest.raises(AssertionError, match="the server closed the connection"):
        await first.recv()


async def test_stop_runs_the_shutdown_hooks_and_leaves_no_task() -> None:
    before = asyncio.all_tasks()
    async with serve(base_config(plugins=[RECORDING])) as server:
        await server.connect("dan")
        events = server.host.state["events"]
        await server.stop()
        assert [name for name, _ in events][-2:] == ["on_disconnect", "shutdown"]
        await server.stop()  # idempotent
    assert asyncio.all_tasks() == before


async def test_a_failing_startup_is_raised_with_its_one_line(
    tmp_path: Path, netrun_serve: Serve
) -> None:
    (tmp_path / "nodb.py").write_text(
        "from netrun_ws import hookimpl\n\n@hookimpl\nasync def startup():\n"
        "    raise ConnectionError('database unreachable')\n"
    )
    with pytest.raises(ServerStartError) as failed:
        await netrun_serve({"plugins_dir": str(tmp_path), "plugins": ["nodb"]})
    assert str(failed.value).startswith(
        f"start-up failed: plugin 'nodb' (file {tmp_path / 'nodb.py'}): failed in startup: "
        "ConnectionError: database unreachable"
    )


async def test_the_packages_own_client_is_served_and_closed_at_teardown() -> None:
    before = asyncio.all_tasks()
    async with serve(base_config(plugins=[ECHO])) as server:
        app_client = await server.client("erin", params={"room": "lobby"})
        assert app_client.welcome is not None and app_client.welcome["user_id"] == "erin"
        connection = server.host.connection(app_client.welcome["connection_id"])
        assert connection is not None
        assert connection.handshake.query_params.get("room") == "lobby"
        await app_client.send({"type": "echo", "seq": 1, "text": "hi"})
        welcome, reply = [await asyncio.wait_for(app_client.recv(), 5) for _ in range(2)]
        assert welcome == app_client.welcome  # the client yields the welcome too
        assert isinstance(reply, dict) and (reply["type"], reply["text"]) == ("echo", "hi")
    assert app_client.state is State.CLOSED
    assert asyncio.all_tasks() == before


async def test_a_refused_package_client_raises_and_is_still_cleaned_up(
    netrun_server: ServedApp,
) -> None:
    with pytest.raises(ClientClosed):
        await netrun_server.client("not valid")  # anonymous auth refuses this user id: 1008
    assert len(netrun_server.app_clients) == 1
    await netrun_server.close_clients()
    assert netrun_server.app_clients == []
