"""A test page that runs the browser client and records its events (``window.seen``), and the
helpers that drive it from a test."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from netrun_ws import create_app
from tests.host.helpers import base_config

# window.join(room) joins and remembers the room: a welcome that did not resume the session (the
# server lost it) is answered by joining again, as an app does.
PAGE = """<!doctype html><title>netrun-ws client test</title>
<script type="module">
import * as netrun from "/client/netrun-ws.js";
window.start = (url, options) => {
  const client = new netrun.NetrunClient(url, options);
  const seen = {states: [], messages: [], gaps: [], welcomes: [], recovered: []};
  const rooms = new Set();
  client.on("state", (change) => seen.states.push(change));
  client.on("message", (message) => seen.messages.push(message));
  client.on("gap", (gap) => seen.gaps.push(gap));
  client.on("recovered", (recovered) => seen.recovered.push(recovered));
  client.on("welcome", (welcome) => {
    seen.welcomes.push(welcome);
    if (!welcome.resumed) for (const room of rooms) client.send({type: "join", room});
  });
  window.join = (room) => { rooms.add(room); return client.send({type: "join", room}); };
  window.client = client;
  window.seen = seen;
  client.connect();
};
window.ready = true;
</script>"""


async def page_route(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


def app_with_page(**overrides: Any) -> Any:
    """A netrun-ws app (``base_config`` with ``overrides``) that also serves the page at /page."""
    app = create_app(base_config(**overrides))
    app.router.routes.append(Route("/page", page_route))
    return app


def allow(app: Any, addr: str) -> str:
    """Allow the page's origin (known once the server has its port); return it."""
    origin = f"http://{addr}"
    app.state.host.config.server.allowed_origins[:] = [origin]
    return origin


async def open_page(browser: Any, url: str, context: Any = None) -> Any:
    page = await (context or browser).new_page()
    await page.goto(url)
    await page.wait_for_function("window.ready === true")
    return page


async def start(page: Any, url: str, options: dict[str, Any]) -> None:
    await page.evaluate("([url, options]) => window.start(url, options)", [url, options])


async def wait_state(page: Any, state: str, timeout: float = 10.0) -> None:
    await page.wait_for_function(
        "(state) => window.client.state === state", arg=state, timeout=timeout * 1000
    )
