"""The browser client (netrun_ws/static/client/netrun-ws.js) in headless Chromium against a real
server: bearer subprotocol auth, pongs, bounded retries after a refusal, session resume."""

from __future__ import annotations

from typing import Any

from netrun_ws.auth import JWTAuthService
from tests.browser.client_page import allow, app_with_page, open_page, start, wait_state
from tests.support.server import serve

SECRET = "browser-client-secret-0123456789abcdef"
FAST_RETRIES = {"initial_delay": 0.05, "max_delay": 0.2, "max_attempts": 10}


async def test_the_client_authenticates_with_a_token_and_answers_pings(browser: Any) -> None:
    token = JWTAuthService(SECRET).generate_token("browser-user")
    app = app_with_page(
        auth={"plugin": "jwt", "secret": SECRET},
        # The server drops a connection that sends nothing for max_missed intervals.
        heartbeat={"plugin": "ping", "interval": 0.2, "timeout": 1.0, "max_missed": 2},
    )
    async with serve(app) as addr:
        page = await open_page(browser, f"{allow(app, addr)}/page")
        await start(page, f"ws://{addr}/ws", {"token": token})
        await wait_state(page, "open")
        # Several heartbeat timeouts later the first connection is still the only one.
        await page.wait_for_timeout(2500)
        seen = await page.evaluate("window.seen")
        protocol = await page.evaluate("window.client._socket.protocol")
        connections = app.state.host.stats().connections.total_connections
    assert protocol == "netrun-ws"
    assert [welcome["user_id"] for welcome in seen["welcomes"]] == ["browser-user"]
    assert [change["state"] for change in seen["states"]] == ["connecting", "open"]
    assert connections == 1


async def test_a_forged_token_is_not_retried(browser: Any) -> None:
    app = app_with_page(auth={"plugin": "jwt", "secret": SECRET})
    async with serve(app) as addr:
        page = await open_page(browser, f"{allow(app, addr)}/page")
        await start(page, f"ws://{addr}/ws", {"token": "forged", "reconnect": FAST_RETRIES})
        await wait_state(page, "failed")
        await page.wait_for_timeout(500)  # time for several retries, were there any
        states = await page.evaluate("window.seen.states")
    assert [change["state"] for change in states] == ["connecting", "failed"]
    assert (states[-1]["code"], states[-1]["reason"], states[-1]["final"]) == (
        1008,
        "invalid token",
        True,
    )


async def test_a_refused_handshake_is_retried_a_bounded_number_of_times(browser: Any) -> None:
    # A refused upgrade (here: the page's Origin is not allowed, HTTP 403) reaches a browser as
    # 1006 before open, like a network error: the client stops after maxRefusals in a row.
    token = JWTAuthService(SECRET).generate_token("browser-user")
    app = app_with_page(
        auth={"plugin": "jwt", "secret": SECRET},
        server={"path": "/ws", "allowed_origins": ["http://allowed.example"]},
    )
    async with serve(app) as addr:
        page = await open_page(browser, f"http://{addr}/page")
        options = {"token": token, "reconnect": FAST_RETRIES, "maxRefusals": 3}
        await start(page, f"ws://{addr}/ws", options)
        await wait_state(page, "failed")
        await page.wait_for_timeout(500)
        states = await page.evaluate("window.seen.states")
    assert [change["state"] for change in states] == [
        "connecting",
        "reconnecting",
        "reconnecting",
        "failed",
    ]
    assert states[-1]["code"] == 1006


async def test_the_welcomes_reconnect_policy_bounds_the_attempts(browser: Any) -> None:
    policy = {"initial_delay": 0.01, "max_delay": 0.05, "max_attempts": 4}
    app = app_with_page(reconnect={"plugin": "exponential", **policy})
    async with serve(app) as addr:
        page = await open_page(browser, f"{allow(app, addr)}/page")
        # The client's own policy (10 attempts) holds only until the welcome brings the server's.
        # Closes before open with nothing listening are network errors, not refusals (3 would
        # end it): the client probes the server before counting one.
        options = {"params": {"user_id": "alice"}, "reconnect": FAST_RETRIES, "maxRefusals": 3}
        await start(page, f"ws://{addr}/ws", options)
        await wait_state(page, "open")
    # The server is gone for good: every attempt fails.
    await wait_state(page, "failed", timeout=20)
    states = await page.evaluate("window.seen.states")
    retries = [change for change in states if change["state"] == "reconnecting"]
    assert len(retries) == 4
    assert retries[0]["code"] == 1012  # the shutdown drained the connection
    assert states[-1]["state"] == "failed" and states[-1]["final"] is True


async def test_a_drained_server_is_followed_by_a_prompt_resume(
    browser: Any, redis_server: Any
) -> None:
    # Two processes' worth of app on one port, one after the other, sharing a Redis store: the
    # session (and its rooms) outlives the first.
    config = {
        "plugins_dir": "plugins",
        "plugins": ["chat"],
        "store": {"plugin": "redis", "url": redis_server.url},
        "reconnect": {"plugin": "exponential", "initial_delay": 0.1, "max_delay": 0.5},
    }
    first = app_with_page(**config)
    async with serve(first) as addr:
        port = int(addr.rsplit(":", 1)[1])
        page = await open_page(browser, f"{allow(first, addr)}/page")
        await start(page, f"ws://{addr}/ws", {"params": {"user_id": "alice"}})
        await wait_state(page, "open")
        await page.evaluate("window.client.send({type: 'join', room: 'lobby'})")
        await page.wait_for_function("window.seen.messages.some((m) => m.type === 'joined')")
        session_id = await page.evaluate("window.client.sessionId")
        await first.state.host.drain(timeout=5)
        await page.wait_for_function("window.client.state === 'reconnecting'")
    second = app_with_page(**config)
    async with serve(second, port=port):
        allow(second, addr)
        await page.wait_for_function("window.seen.welcomes.length === 2", timeout=10_000)
        seen = await page.evaluate("window.seen")
    drained = next(change for change in seen["states"] if change["state"] == "reconnecting")
    assert drained["code"] == 1012
    assert drained["delay"] < 0.1  # prompt: a random part of the first backoff step
    assert seen["welcomes"][1]["session_id"] == session_id
    assert seen["welcomes"][1]["resumed"] is True
    assert seen["welcomes"][1]["rooms"] == ["lobby"]
