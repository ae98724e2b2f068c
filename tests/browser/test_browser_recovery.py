"""A page keeps receiving a room stream through server restarts and an offline spell: it ends with
every message exactly once and in order, or reports the loss as a gap (the memory store loses its
history on restart). Real servers, a real redis-server, headless Chromium."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from tests.browser.client_page import allow, app_with_page, open_page, start, wait_state
from tests.support.server import serve

ROOM = "stream"
# Quick retries, and a heartbeat the client's liveness check follows (frames every 0.3 s).
FAST = {
    "plugins_dir": "plugins",
    "plugins": ["chat"],
    "reconnect": {"plugin": "exponential", "initial_delay": 0.1, "max_delay": 0.5},
    "heartbeat": {"plugin": "ping", "interval": 0.3, "timeout": 1.5, "max_missed": 5},
    # The stream runs at about 100 messages a second: keep more than an outage's worth.
    "history": {"rooms_size": 5000},
}


class Publisher:
    """Publishes {"type": "tick", "n": 1, 2, ...} to the room through whichever app is current
    (none while the server restarts: the stream pauses, nothing is skipped)."""

    def __init__(self) -> None:
        self.app: Any = None
        self.published = 0
        self._turn = asyncio.Lock()  # a switch waits for the publish under way

    async def switch(self, app: Any) -> int:
        """Publish through ``app`` from now on (None: pause); return how many were published."""
        async with self._turn:
            self.app = app
            return self.published

    async def run(self) -> None:
        while True:
            async with self._turn:
                if self.app is not None and self.app.state.host.started:
                    with contextlib.suppress(Exception):  # a draining host may refuse; retry
                        await self.app.state.host.publish_room(
                            ROOM, {"type": "tick", "n": self.published + 1}
                        )
                        self.published += 1
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def publishing() -> AsyncIterator[Publisher]:
    publisher = Publisher()
    task = asyncio.create_task(publisher.run())
    try:
        yield publisher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def ticks(page: Any) -> list[int]:
    return list(
        await page.evaluate("window.seen.messages.filter((m) => m.type === 'tick').map((m) => m.n)")
    )


async def wait_ticks(page: Any, at_least: int, timeout: float = 15.0) -> None:
    await page.wait_for_function(
        "(n) => window.seen.messages.some((m) => m.type === 'tick' && m.n >= n)",
        arg=at_least,
        timeout=timeout * 1000,
    )


async def join_stream(browser: Any, app: Any, addr: str, context: Any = None) -> Any:
    page = await open_page(browser, f"{allow(app, addr)}/page", context)
    await start(page, f"ws://{addr}/ws", {"params": {"user_id": "alice"}})
    await wait_state(page, "open")
    await page.evaluate(f"window.join({ROOM!r})")
    await page.wait_for_function("window.seen.messages.some((m) => m.type === 'joined')")
    return page


async def restart(browser: Any, config: dict[str, Any]) -> tuple[list[int], list[Any], int]:
    """Stream to a page, drain the server, serve a new app on the same port, stream on; return
    the page's ticks, its gaps and how many ticks were published."""
    first = app_with_page(**config)
    async with publishing() as publisher:
        async with serve(first) as addr:
            page = await join_stream(browser, first, addr)
            await publisher.switch(first)
            await wait_ticks(page, 30)
            await first.state.host.drain(timeout=5)
            # Published while the page is away, before the server exits; meanwhile the draining
            # server refuses the page's attempts (which must not count as auth refusals).
            await asyncio.sleep(1.0)
            before = await publisher.switch(None)
        second = app_with_page(**config)
        async with serve(second, port=int(addr.rsplit(":", 1)[1])):
            allow(second, addr)
            await publisher.switch(second)
            await wait_state(page, "open")
            await wait_ticks(page, before + 30)
            last = await publisher.switch(None)
            await wait_ticks(page, last)
        return await ticks(page), await page.evaluate("window.seen.gaps"), last


def contiguous(numbers: list[int]) -> bool:
    return numbers == list(range(numbers[0], numbers[0] + len(numbers))) if numbers else True


async def test_a_restart_of_a_memory_store_server_is_reported_as_a_gap(browser: Any) -> None:
    received, gaps, last = await restart(browser, FAST)
    # The new process has a new history (new epoch) and no session: what the page missed is
    # gone, and the page is told so for the room instead of losing it silently.
    room_gaps = [gap for gap in gaps if gap["channel"] == f"room:{ROOM}"]
    assert [gap["reason"] for gap in room_gaps] == ["session_lost"], gaps
    assert received == sorted(set(received))  # in order, no duplicate
    cut = next(i for i in range(1, len(received)) if received[i] != received[i - 1] + 1)
    assert received[0] == 1 and contiguous(received[:cut])
    assert contiguous(received[cut:]) and received[-1] == last


async def test_a_restart_on_a_redis_store_loses_nothing(browser: Any, redis_server: Any) -> None:
    config = {**FAST, "store": {"plugin": "redis", "url": redis_server.url}}
    received, gaps, last = await restart(browser, config)
    assert gaps == []
    assert received == list(range(1, last + 1))


async def test_a_page_offline_and_back_recovers_what_it_missed(browser: Any) -> None:
    app = app_with_page(**FAST)
    context = await browser.new_context()
    try:
        async with publishing() as publisher, serve(app) as addr:
            page = await join_stream(browser, app, addr, context)
            await publisher.switch(app)
            await wait_ticks(page, 30)
            await context.set_offline(True)
            # Offline long enough for the page to notice (no frame for the heartbeat timeout).
            await page.wait_for_function("window.client.state === 'reconnecting'", timeout=10_000)
            missed_from = publisher.published
            await asyncio.sleep(0.5)
            await context.set_offline(False)
            await wait_ticks(page, missed_from + 60)
            last = await publisher.switch(None)
            await wait_ticks(page, last)
            received = await ticks(page)
            gaps = await page.evaluate("window.seen.gaps")
            welcomes = await page.evaluate("window.seen.welcomes")
            states = await page.evaluate("window.seen.states")
    finally:
        await context.close()
    # Chromium's offline mode leaves the socket open: the client's liveness check (no frame for
    # the welcome's heartbeat timeout) dropped it, and offline attempts were not refusals.
    assert any(change.get("code") == 4100 for change in states), states
    assert states[-1]["state"] == "open"
    assert gaps == []
    assert len(welcomes) >= 2 and welcomes[-1]["resumed"] is True
    assert received == list(range(1, last + 1))
