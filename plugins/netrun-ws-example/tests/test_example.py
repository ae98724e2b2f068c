"""The example plugin under a real server, through netrun_ws.testing's pytest fixtures.

Run with the distribution installed (`pip install -e '.[test]'`, then `pytest` here): the
config names the plugin by its entry point, `example`.
"""

from __future__ import annotations

from typing import Any

import pytest

from netrun_ws.testing import Serve, ServedApp


@pytest.fixture
def netrun_config(netrun_config: dict[str, Any]) -> dict[str, Any]:
    return {**netrun_config, "plugins": [{"plugin": "example", "motd": "hello from a test"}]}


async def test_the_welcome_carries_the_motd(netrun_server: ServedApp) -> None:
    client = await netrun_server.connect("alice")
    assert client.welcome["motd"] == "hello from a test"


async def test_echo_answers_with_the_same_text(netrun_server: ServedApp) -> None:
    client = await netrun_server.connect("alice")
    assert await client.request({"type": "echo", "text": "x"}) == {"type": "echo", "text": "x"}


async def test_a_too_long_echo_gets_an_error_reply(netrun_server: ServedApp) -> None:
    client = await netrun_server.connect("alice")
    await client.send({"type": "echo", "text": "x" * 1001})
    reply = await client.expect_error("validation_failed")
    assert reply["details"]["errors"][0]["loc"] == ["text"]


async def test_the_default_motd(netrun_serve: Serve) -> None:
    server = await netrun_serve({"plugins": ["example"]})
    assert (await server.connect("bob")).welcome["motd"] == "welcome"


async def test_a_bad_option_is_refused_at_start_up(netrun_serve: Serve) -> None:
    from netrun_ws.config import ConfigError

    with pytest.raises(ConfigError, match="motd"):
        await netrun_serve({"plugins": [{"plugin": "example", "motd": 3}]})
