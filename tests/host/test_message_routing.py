"""Dispatch by message type (docs/hooks.md "on_message"): a message reaches only the
``on_message`` implementations that handle its type, catch-alls still see every message, and the
replies go out as before (every non-None result, in plugin order)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from netrun_ws import create_app
from netrun_ws.plugins import PluginLoadError
from netrun_ws.testing import Serve
from tests.host.helpers import base_config
from tests.host.routing.types_plugin import Say, Shout, Whisper

ROUTING = "tests.host.routing"
# Registered (and called, LIFO) in this order: untyped, named, loud, say, types.
PLUGINS = [f"{ROUTING}.{name}" for name in ("types_plugin", "say_plugin", "loud_plugin")]
PLUGINS += [f"{ROUTING}.named_plugin", f"{ROUTING}.untyped_plugin"]


async def _served(
    netrun_serve: Serve, plugins: list[str], frames: list[dict[str, Any]], replies: int
) -> Any:
    """Serve ``plugins``, send ``frames``, read ``replies`` frames."""
    server = await netrun_serve({"plugins": plugins})
    client = await server.connect()
    for frame in frames:
        await client.send(frame)
    got = [await client.recv() for _ in range(replies)]
    await server.stop()
    return server.host.state.get("seen", []), got


async def test_each_message_reaches_only_its_handlers_and_every_catch_all(
    netrun_serve: Serve,
) -> None:
    frames = [{"type": "say", "text": "a"}, {"type": "shout", "text": "b"}, {"type": "whisper"}]
    seen, replies = await _served(netrun_serve, PLUGINS, frames, replies=4)
    assert seen == [
        # say: untyped (catch-all), loud (Say | Shout), say (Say), types (BaseModel catch-all)
        ("untyped", "say"),
        ("loud", "say"),
        ("say", "say"),
        ("catch_all", "say"),
        # shout: not say_plugin, not named_plugin
        ("untyped", "shout"),
        ("loud", "shout"),
        ("catch_all", "shout"),
        # whisper: handles("whisper") and the catch-alls only
        ("untyped", "whisper"),
        ("named", "whisper"),
        ("catch_all", "whisper"),
    ]
    # Every non-None reply, in call order; a handler's None leaves the others' replies alone.
    assert replies == [
        {"type": "said", "by": "untyped_plugin"},
        {"type": "said", "by": "say_plugin", "text": "a"},
        {"type": "shouted", "text": "B"},
        {"type": "whispered"},
    ]


async def test_a_handler_of_another_type_is_not_called_and_sends_nothing(
    netrun_serve: Serve,
) -> None:
    plugins = [f"{ROUTING}.types_plugin", f"{ROUTING}.say_plugin"]
    server = await netrun_serve({"plugins": plugins})
    client = await server.connect()
    await client.send({"type": "shout", "text": "x"})
    await client.send({"type": "say", "text": "y"})
    assert await client.recv() == {"type": "said", "by": "say_plugin", "text": "y"}
    await server.stop()
    seen = server.host.state["seen"]
    assert seen == [("catch_all", "shout"), ("say", "say"), ("catch_all", "say")]


@pytest.mark.parametrize(
    ("plugin", "function", "cause"),
    [
        ("unregistered_plugin", "Plugin.on_message", "Lost is not a registered message type"),
        ("unknown_name_plugin", "on_message", "handles 'nope', not a registered message type"),
    ],
)
def test_a_handler_of_an_unregistered_type_stops_start_up_in_one_line(
    plugin: str, function: str, cause: str
) -> None:
    with pytest.raises(PluginLoadError) as raised:
        create_app(base_config(plugins=[f"{ROUTING}.types_plugin", f"{ROUTING}.{plugin}"]))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"plugin '{ROUTING}.{plugin}' (")
    assert message.endswith(f"on_message {function}: {cause}")


async def test_the_relay_calls_the_handlers_of_the_type_only() -> None:
    app = create_app(base_config(plugins=PLUGINS))
    host = app.state.host
    routes = host.message_loop.routes

    def plugins_for(model: type[BaseModel]) -> list[str]:
        return [step.plugin.rsplit(".", 1)[-1] for step in routes.plan_for(model)]

    assert plugins_for(Say) == ["untyped_plugin", "loud_plugin", "say_plugin", "types_plugin"]
    assert plugins_for(Shout) == ["untyped_plugin", "loud_plugin", "types_plugin"]
    assert plugins_for(Whisper) == ["untyped_plugin", "named_plugin", "types_plugin"]
    replies = await host.fire.on_message(None, Whisper(type="whisper"))
    assert replies == [{"type": "whispered"}]
    assert host.state["seen"] == [
        ("untyped", "whisper"),
        ("named", "whisper"),
        ("catch_all", "whisper"),
    ]


async def test_the_heartbeat_plugin_answers_ping_only_and_starts_without_it(
    netrun_serve: Serve,
) -> None:
    heartbeat = {"plugin": "ping", "interval": 30, "timeout": 90, "max_missed": 3}
    server = await netrun_serve({"heartbeat": heartbeat, "plugins": [f"{ROUTING}.types_plugin"]})
    routes = server.host.message_loop.routes
    handled = {
        model.__name__
        for model, plan in routes.table.items()
        if any(step.plugin == "heartbeat" for step in plan)
    }
    assert handled == {"PingMessage"}
    client = await server.connect()
    await client.send({"type": "say"})
    await client.send({"type": "ping"})
    assert await client.recv() == {"type": "pong"}
    # A protocol without "ping": handles("ping", optional=True) routes nothing, start-up goes on.
    no_ping = {"plugin": "json", "schemas": []}
    app = create_app(
        base_config(heartbeat=heartbeat, protocol=no_ping, plugins=[f"{ROUTING}.types_plugin"])
    )
    tables = app.state.host.message_loop.routes.table.values()
    assert not any(step.plugin == "heartbeat" for plan in tables for step in plan)
