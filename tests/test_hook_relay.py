"""The typed hook calls: HookRelay (``host.fire``) has one method per hookspec taking the spec's
arguments, and calling a hook by a name no spec has is an error, not silence."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import pluggy
import pytest

from netrun_ws import create_app, hookspecs
from netrun_ws.hookspecs import all_hook_names
from netrun_ws.plugins.hooks import HookError, Hooks, UnknownHookError
from netrun_ws.plugins.relay import HookRelay
from tests.host.helpers import base_config

_HELPERS = {"has"}


def _relay_methods() -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(HookRelay, inspect.isfunction)
        if not name.startswith("_") and name not in _HELPERS
    }


def test_every_hookspec_has_one_relay_method_and_no_other() -> None:
    assert set(_relay_methods()) == all_hook_names()


@pytest.mark.parametrize("hook", sorted(all_hook_names()))
def test_relay_method_takes_the_specs_arguments(hook: str) -> None:
    spec = list(inspect.signature(getattr(hookspecs, hook)).parameters)
    method = list(inspect.signature(_relay_methods()[hook]).parameters)
    assert method[0] == "self"
    # The relay fills in ``host``; every other argument keeps the spec's name and order.
    assert method[1:] == [name for name in spec if name != "host"]


def test_relay_fires_through_the_host() -> None:
    quiet = create_app(base_config()).state.host
    assert isinstance(quiet.fire, HookRelay)
    assert not quiet.fire.has("on_message")
    host = create_app(base_config(heartbeat={"plugin": "ping"})).state.host
    assert host.fire.has("on_message")  # the heartbeat plugin answers client pings


spec = pluggy.HookspecMarker("relaytest")
impl = pluggy.HookimplMarker("relaytest")


class Spec:
    @spec
    def event(self, host: Any, value: Any) -> Any:
        """Two arguments."""


class Raises:
    @impl
    def event(self, value: Any) -> Any:
        raise RuntimeError(f"bad {value}")


class Returns:
    @impl
    async def event(self, value: Any) -> Any:
        return value * 2


def _hooks(*plugins: object) -> Hooks:
    pm = pluggy.PluginManager("relaytest")
    pm.add_hookspecs(Spec)
    for plugin in plugins:
        pm.register(plugin)
    return Hooks(pm)


async def test_an_unknown_hook_name_is_an_error_with_a_hint() -> None:
    hooks = _hooks(Returns())
    for call in (
        lambda: hooks.has("evnt"),
        lambda: hooks.implementations("evnt"),
        lambda: hooks.bind("evnt", "value"),
    ):
        with pytest.raises(UnknownHookError, match="no hook is named 'evnt'; did you mean 'event'"):
            call()
    for coroutine in (hooks.call, hooks.first, hooks.call_isolated):
        with pytest.raises(UnknownHookError, match="'evnt'"):
            await coroutine("evnt", value=1)


async def test_an_argument_the_spec_lacks_is_an_error() -> None:
    hooks = _hooks(Returns())
    with pytest.raises(UnknownHookError, match="hook 'event' takes no argument 'valeu'"):
        await hooks.call("event", valeu=1)


async def test_an_argument_an_implementation_takes_must_be_given() -> None:
    hooks = _hooks(Returns())
    with pytest.raises(TypeError, match=r"called without 'value', which plugin '.*' takes"):
        await hooks.call("event", host=None)
    assert await hooks.call("event", host=None, value=1) == [2]


def test_implementations_are_listed_in_call_order() -> None:
    raises, returns = Raises(), Returns()
    hooks = _hooks(returns, raises)
    assert hooks.implementations("event") == [str(id(raises)), str(id(returns))]


async def test_isolated_calls_run_every_implementation(caplog: pytest.LogCaptureFixture) -> None:
    raises, returns = Raises(), Returns()
    hooks = _hooks(returns, raises)  # pluggy calls the last registered first
    logger = logging.getLogger("netrun_ws.hooks")
    logger.addHandler(caplog.handler)  # whatever propagation other tests left
    try:
        failures = await hooks.call_isolated("event", host=None, value=3)
    finally:
        logger.removeHandler(caplog.handler)
    assert [type(f.error) for f in failures] == [RuntimeError]
    assert "failed in hook 'event'" in caplog.text
    with pytest.raises(HookError, match="RuntimeError: bad 3"):
        await hooks.call("event", host=None, value=3)
    assert await _hooks(returns).first("event", value=3) == 6
