"""The chat example's page (plugins/chat.html, served at / by plugins/chat.py) in two Chromium
pages, on the shipped netrun_ws.yaml: anonymous users chat in a room and directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun_ws import create_app
from netrun_ws.app import load_app_config
from tests.support.cli_server import free_port, run_cli
from tests.support.server import serve

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def chat_server() -> AsyncIterator[tuple[Any, str]]:
    app = create_app(ROOT / "netrun_ws.yaml")
    async with serve(app) as addr:
        # The shipped config allows the pages of port 8000; this server has a free port.
        app.state.host.config.server.allowed_origins[:] = [f"http://{addr}"]
        yield app, f"http://{addr}/"


async def sign_in(browser: Any, url: str, name: str) -> Any:
    page = await browser.new_page()
    await page.goto(url)
    await page.fill("#name", name)
    await page.click("#login-form button")
    await page.wait_for_selector("#state[data-state=open]")
    return page


async def join(page: Any, room: str) -> None:
    await page.fill("#join-room", room)
    await page.click("#join-form button")
    await page.wait_for_selector(f"#rooms li[data-key='room:{room}']")


async def say(page: Any, text: str) -> None:
    await page.fill("#text", text)
    await page.click("#send")


async def test_two_pages_chat_in_a_room_and_directly(
    browser: Any, chat_server: tuple[Any, str]
) -> None:
    _, url = chat_server
    alice = await sign_in(browser, url, "alice")
    bob = await sign_in(browser, url, "bob")
    assert await alice.text_content("#state") == "connected"
    await join(alice, "lobby")
    await join(bob, "lobby")
    await alice.wait_for_selector("#log .note:has-text('bob joined')")

    await say(alice, "hello bob")
    said = bob.locator("#log .msg", has_text="hello bob")
    await said.wait_for()
    assert await said.locator(".who").text_content() == "alice"
    await alice.locator("#log .msg.mine", has_text="hello bob").wait_for()

    await bob.fill("#dm-user", "alice")
    await bob.click("#dm-form button")
    await say(bob, "psst, alice")
    await alice.wait_for_selector("#directs li[data-key='user:bob'] .unread")
    await alice.click("#directs li[data-key='user:bob']")
    direct = alice.locator("#log .msg", has_text="psst, alice")
    await direct.wait_for()
    assert await direct.locator(".who").text_content() == "bob"
    assert await bob.locator("#log .msg.mine", has_text="psst, alice").count() == 1


async def test_error_replies_and_undelivered_directs_are_shown(
    browser: Any, chat_server: tuple[Any, str]
) -> None:
    _, url = chat_server
    alice = await sign_in(browser, url, "alice")
    await join(alice, "lobby")
    # The server refuses a say in a room the page is not in: its error reply is on screen.
    await alice.evaluate("window.chat.client.send({type: 'say', room: 'nowhere', text: 'hi'})")
    await alice.wait_for_selector("#banner.shown")
    assert "join 'nowhere' before saying anything" in (await alice.text_content("#banner") or "")
    await alice.wait_for_selector("#log .note.error")

    await alice.fill("#dm-user", "nobody")
    await alice.click("#dm-form button")
    await say(alice, "anyone there?")
    await alice.wait_for_selector("#log .note.error:has-text('not delivered')")


async def test_leaving_a_room_removes_it(browser: Any, chat_server: tuple[Any, str]) -> None:
    _, url = chat_server
    alice = await sign_in(browser, url, "alice")
    await join(alice, "lobby")
    await alice.click("#rooms li[data-key='room:lobby'] button")
    await alice.wait_for_selector("#rooms li[data-key='room:lobby']", state="detached")
    assert await alice.is_disabled("#text")


async def test_the_page_imports_the_served_client_and_is_off_without_it() -> None:
    app = create_app(ROOT / "netrun_ws.yaml")
    off = create_app(
        load_app_config(ROOT / "netrun_ws.yaml", overrides={"server": {"client_path": None}})
    )
    async with serve(app) as addr, httpx.AsyncClient() as http:
        page = await http.get(f"http://{addr}/")
        script = await http.get(f"http://{addr}/client/netrun-ws.js")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'from "/client/netrun-ws.js"' in page.text
    assert 'new URL("/ws", location.href)' in page.text
    assert script.status_code == 200
    async with serve(off) as addr, httpx.AsyncClient() as http:
        assert (await http.get(f"http://{addr}/")).status_code == 404


async def test_netrun_ws_run_with_the_default_config_serves_a_working_chat(browser: Any) -> None:
    # The README's promise, as a user meets it: `netrun-ws run` in the checkout, two tabs on /.
    port = free_port()
    env = {"NETRUN_WS_PORT": str(port)}  # the shipped allowed_origins follow the port
    async with run_cli(ROOT / "netrun_ws.yaml", cwd=ROOT, env=env, port=port):
        url = f"http://127.0.0.1:{port}/"
        alice = await sign_in(browser, url, "alice")
        bob = await sign_in(browser, url.replace("127.0.0.1", "localhost"), "bob")
        await join(alice, "lobby")
        await join(bob, "lobby")
        await say(bob, "hi from the other tab")
        await alice.locator("#log .msg", has_text="hi from the other tab").wait_for()
