"""The status page in a real headless Chromium: it loads, its charts move while traffic flows,
and a node that dies (SIGKILL) disappears from its list of nodes.

Two nodes share a private redis-server: node A is served in this process with the status sink,
node B is a `netrun-ws run` subprocess that the test kills.
"""

from __future__ import annotations

import asyncio
import json
import signal
import textwrap
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from netrun_ws import create_app
from tests.browser.test_browser_auth import browser  # noqa: F401  (the Chromium fixture)
from tests.host.helpers import ECHO, base_config, recv_json
from tests.support.cli_server import run_cli
from tests.support.redis_server import RedisServer
from tests.support.server import serve

STORE = {"node_ttl": 1.5, "node_heartbeat": 0.3, "probe_interval": 0.3, "probe_timeout": 1.0}


def node_b_config(tmp_path: Path, redis_url: str) -> Path:
    config = tmp_path / "netrun_ws.yaml"
    options = ", ".join(f"{key}: {value}" for key, value in STORE.items())
    config.write_text(
        textwrap.dedent(
            f"""
            store: {{plugin: redis, url: "{redis_url}", {options}}}
            heartbeat: null
            metrics: []
            plugins_dir: null
            plugins: []
            """
        )
    )
    return config


async def rows(page: Any) -> list[str]:
    texts: list[str] = await page.eval_on_selector_all(
        "#nodes tr", "(trs) => trs.slice(1).map((tr) => tr.cells[0].textContent)"
    )
    return texts


async def until(check: Any, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(0.1)


async def traffic(addr: str, seconds: float) -> None:
    async with connect(f"ws://{addr}/ws?user_id=driver") as client:
        await recv_json(client)
        end = asyncio.get_running_loop().time() + seconds
        seq = 0
        while asyncio.get_running_loop().time() < end:
            await client.send(json.dumps({"type": "echo", "seq": seq}))
            await recv_json(client)
            seq += 1


async def test_the_status_page_is_live_and_follows_the_cluster(
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with RedisServer() as redis:
        app = create_app(
            base_config(
                store={"plugin": "redis", "url": redis.url, **STORE},
                metrics=[{"plugin": "status", "interval": 0.2, "window": 30}],
                limits={"messages_per_second": 100_000},
                plugins=[ECHO],
            )
        )
        async with serve(app) as addr, run_cli(node_b_config(tmp_path, redis.url)) as node_b:
            page = await browser.new_page()
            await page.goto(f"http://{addr}/status")
            await until(lambda: _live(page), 10)
            await until(lambda: _count(page, 2), 10)

            before = await page.get_attribute("#chart-messages path.series", "d")
            await traffic(addr, 1.5)
            await until(lambda: _busy(page), 5)
            after = await page.get_attribute("#chart-messages path.series", "d")
            assert before != after  # the line moved with the traffic
            assert await page.locator("#chart-connections path.series").count() == 1

            node_b.process.send_signal(signal.SIGKILL)
            await node_b.process.wait()
            await until(lambda: _count(page, 1), 10)  # node B's presence expired
            assert len(await rows(page)) == 1
            await page.close()


async def _live(page: Any) -> bool:
    return bool(await page.text_content("#state") == "live")


async def _count(page: Any, wanted: int) -> bool:
    return len(await rows(page)) == wanted


async def _busy(page: Any) -> bool:
    text = await page.text_content("#now-messages") or ""
    incoming = text.split("/")[0].strip()
    return incoming not in ("", "\N{EN DASH}", "0")  # the page shows an en dash before data
