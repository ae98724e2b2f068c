"""`netrun-ws run` applies server.gc_threshold at start and server.gc_freeze after start-up."""

from __future__ import annotations

import gc
from pathlib import Path

from websockets.asyncio.client import connect

from tests.host.helpers import recv_json
from tests.support.cli_server import run_cli

# A plugin file that reports the server process's garbage-collector state in the welcome.
GC_REPORT_PLUGIN = """
import gc

from netrun_ws import hookimpl


@hookimpl
def welcome_payload(host, connection):
    return {"gc": {"threshold": list(gc.get_threshold()), "frozen": gc.get_freeze_count()}}
"""


async def _server_gc_state(tmp_path: Path, server_settings: str) -> dict[str, object]:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "gc_report.py").write_text(GC_REPORT_PLUGIN)
    config = tmp_path / "netrun_ws.yaml"
    config.write_text(
        f"server: {{{server_settings}}}\nauth: {{plugin: anonymous}}\nplugins: [gc_report]\n"
    )
    async with run_cli(config, cwd=tmp_path) as server:
        async with connect(f"ws://{server.addr}/ws?user_id=alice") as client:
            welcome = await recv_json(client)
    assert "Traceback" not in server.text()
    state: dict[str, object] = welcome["gc"]
    return state


async def test_defaults_raise_the_threshold_and_freeze_the_start_up_heap(tmp_path: Path) -> None:
    state = await _server_gc_state(tmp_path, "")
    assert state["threshold"] == [5000, *gc.get_threshold()[1:]]
    assert isinstance(state["frozen"], int) and state["frozen"] > 10_000  # modules, schemas, ...


async def test_settings_are_applied(tmp_path: Path) -> None:
    state = await _server_gc_state(tmp_path, "gc_threshold: 1234, gc_freeze: false")
    assert state["threshold"] == [1234, *gc.get_threshold()[1:]]
    assert state["frozen"] == 0


async def test_null_threshold_keeps_pythons_default(tmp_path: Path) -> None:
    state = await _server_gc_state(tmp_path, "gc_threshold: null")
    assert state["threshold"] == list(gc.get_threshold())  # this interpreter's own default
