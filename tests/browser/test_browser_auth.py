"""Browser-facing features in a real headless Chromium: the bearer subprotocol transport (browsers
cannot set an Authorization header) and the Origin allowlist (cross-site WebSocket hijacking).

The `browser` fixture (tests/browser/conftest.py) launches the system's Chromium.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from netrun_ws import create_app
from netrun_ws.auth import JWTAuthService
from tests.host.helpers import base_config
from tests.support.server import serve

SECRET = "browser-test-secret-0123456789abcdef0123"
PAGE = """<!doctype html><title>netrun-ws browser test</title>
<script>
window.connect = (url, protocols) => new Promise((resolve) => {
  const ws = new WebSocket(url, protocols);
  const seen = {messages: [], protocol: null, code: null, reason: null};
  ws.onmessage = (event) => {
    seen.messages.push(JSON.parse(event.data));
    seen.protocol = ws.protocol;
    ws.close(1000);
  };
  ws.onclose = (event) => { seen.code = event.code; seen.reason = event.reason; resolve(seen); };
});
</script>"""


async def page_route(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


def browser_app() -> Any:
    config = base_config(
        server={"allowed_origins": ["http://allowed.example"]},
        auth={"plugin": "jwt", "secret": SECRET},
    )
    app = create_app(config)
    app.router.routes.append(Route("/page", page_route))
    return app


def allow(app: Any, origin: str) -> None:
    """The page's origin (http://127.0.0.1:PORT) is known once the server has its port."""
    app.state.host.config.server.allowed_origins[:] = [origin]


async def run_in_page(browser: Any, page_url: str, ws_url: str, protocols: list[str]) -> Any:
    page = await browser.new_page()
    try:
        await page.goto(page_url)
        return await page.evaluate(
            "([url, protocols]) => window.connect(url, protocols)", [ws_url, protocols]
        )
    finally:
        await page.close()


async def test_a_browser_authenticates_with_the_bearer_subprotocol(browser: Any) -> None:
    token = JWTAuthService(SECRET).generate_token("browser-user")
    # The page and the socket share 127.0.0.1:PORT, so the page's Origin is allowed.
    app = browser_app()
    async with serve(app) as addr:
        app_origin = f"http://{addr}"
        allow(app, app_origin)
        seen = await run_in_page(
            browser, f"{app_origin}/page", f"ws://{addr}/ws", ["netrun-ws", f"bearer.{token}"]
        )
    assert seen["protocol"] == "netrun-ws", seen
    assert seen["messages"][0]["type"] == "connect"
    assert seen["messages"][0]["user_id"] == "browser-user"
    assert seen["code"] == 1000
    assert token not in json.dumps(seen)


async def test_a_bad_token_from_a_browser_is_closed_1008(browser: Any) -> None:
    app = browser_app()
    async with serve(app) as addr:
        app_origin = f"http://{addr}"
        allow(app, app_origin)
        seen = await run_in_page(
            browser, f"{app_origin}/page", f"ws://{addr}/ws", ["netrun-ws", "bearer.forged"]
        )
    assert seen["messages"] == []
    assert (seen["code"], seen["reason"]) == (1008, "invalid token")


async def test_a_page_from_another_origin_cannot_open_the_socket(browser: Any) -> None:
    token = JWTAuthService(SECRET).generate_token("victim")
    async with serve(browser_app()) as addr:
        # The page is served by this same server, but its origin is not on the allowlist.
        seen = await run_in_page(
            browser, f"http://{addr}/page", f"ws://{addr}/ws", ["netrun-ws", f"bearer.{token}"]
        )
    assert seen["messages"] == []
    assert seen["code"] == 1006  # the handshake was refused (HTTP 403); browsers only see 1006
