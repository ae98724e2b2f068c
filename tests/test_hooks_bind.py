"""Hooks.bind, the positional caller on the per-message path, must behave exactly like Hooks.call:
same order, same argument selection, awaiting, None results dropped, failures named."""

from __future__ import annotations

import asyncio
from typing import Any

import pluggy
import pytest
from pydantic import BaseModel

from netrun_ws.plugins.hooks import HookError, Hooks, awaitable

hookspec = pluggy.HookspecMarker("bindtest")
hookimpl = pluggy.HookimplMarker("bindtest")


class Spec:
    @hookspec
    def event(self, host: Any, connection: Any, message: Any) -> Any:
        """An event with three arguments."""


class All:
    @hookimpl
    def event(self, host: Any, connection: Any, message: Any) -> Any:
        return ("all", host, connection, message)


class Last:
    @hookimpl
    async def event(self, message: Any) -> Any:
        return ("last", message)


class OutOfOrder:
    @hookimpl
    def event(self, message: Any, host: Any) -> Any:
        return ("out-of-order", message, host)


class Nothing:
    @hookimpl
    def event(self) -> None:
        return None


class Broken:
    @hookimpl
    def event(self, connection: Any) -> Any:
        raise ValueError(f"bad {connection}")


def hooks_with(*plugins: object) -> Hooks:
    manager = pluggy.PluginManager("bindtest")
    manager.add_hookspecs(Spec)
    for index, plugin in enumerate(plugins):
        manager.register(plugin, name=f"{type(plugin).__name__.lower()}{index}")
    return Hooks(manager)


async def test_bind_returns_what_call_returns() -> None:
    hooks = hooks_with(All(), Last(), OutOfOrder(), Nothing())
    bound = hooks.bind("event", "host", "connection", "message")
    called = await hooks.call("event", host="H", connection="C", message="M")
    assert await bound("H", "C", "M") == called
    assert sorted(result[0] for result in called) == ["all", "last", "out-of-order"]
    assert ("out-of-order", "M", "H") in called


async def test_a_failure_names_the_plugin_and_the_hook() -> None:
    hooks = hooks_with(Last(), Broken())
    bound = hooks.bind("event", "host", "connection", "message")
    with pytest.raises(HookError) as raised:
        await bound("H", "C", "M")
    assert raised.value.hook == "event"
    assert raised.value.plugin.startswith("broken")
    assert str(raised.value.error) == "bad C"


async def test_no_implementations_returns_an_empty_list() -> None:
    assert await hooks_with().bind("event", "host", "connection", "message")("H", "C", "M") == []


class PlainReturnsAwaitable:
    """A plain function handing back a coroutine or a future: still awaited."""

    @hookimpl
    def event(self, message: Any) -> Any:
        async def later() -> Any:
            return ("awaited", message)

        return later()


class PlainReturnsModel:
    """A plain function returning a pydantic model: not awaitable, returned as is."""

    @hookimpl
    def event(self, message: Any) -> Any:
        return Reply(text=str(message))


class Reply(BaseModel):
    text: str


async def test_results_of_plain_functions_are_awaited_only_when_awaitable() -> None:
    hooks = hooks_with(PlainReturnsAwaitable(), PlainReturnsModel())
    results = await hooks.call("event", host="h", connection="c", message="m")
    assert sorted(map(repr, results)) == sorted([repr(("awaited", "m")), repr(Reply(text="m"))])
    for _ in range(2):  # decided once per type, then from the cache
        assert awaitable(Reply(text="x")) is False
        assert awaitable(asyncio.get_running_loop().create_future()) is True
        assert awaitable(None) is False
        assert awaitable({"type": "x"}) is False
    coroutine = PlainReturnsAwaitable().event("m")
    assert awaitable(coroutine) is True
    assert await coroutine == ("awaited", "m")
