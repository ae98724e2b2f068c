"""The pytest plugin of :mod:`netrun_ws.testing` (entry point ``pytest11``, name ``netrun_ws``).

Loaded by every pytest run in an environment where netrun-ws is installed, so it imports the
kit only when a fixture is used, and without pytest-asyncio its fixtures fail with the command
that installs it instead of breaking pytest.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from netrun_ws.testing import Client, Serve, ServedApp

__all__ = [
    "netrun_client",
    "netrun_config",
    "netrun_serve",
    "netrun_server",
    "netrun_ws_protocol",
]

_NEEDS = "netrun_ws.testing's fixtures need pytest-asyncio: pip install 'netrun-ws[testing]'"

# Without pytest-asyncio the fixtures below say what to install.
HAVE_PYTEST_ASYNCIO = importlib.util.find_spec("pytest_asyncio") is not None


@pytest.fixture
def netrun_config() -> dict[str, Any]:
    """The config ``netrun_server`` serves: :func:`netrun_ws.testing.base_config` (anonymous
    auth, memory store, no heartbeat, no metrics). Override this fixture to add your plugin."""
    from netrun_ws.testing import base_config

    return base_config()


@pytest.fixture
def netrun_ws_protocol() -> str | None:
    """The ``server.ws_protocol`` to serve with (None: what the config says). Override it, e.g.
    parametrised, to run tests under both ``netrun`` and ``uvicorn``."""
    return None


if HAVE_PYTEST_ASYNCIO:
    from pytest_asyncio import fixture as async_fixture

    @async_fixture
    async def netrun_serve(netrun_ws_protocol: str | None) -> AsyncIterator[Serve]:
        """A function serving an app per call (``await netrun_serve({...})`` or a YAML path);
        every server it started stops, and its clients close, when the test ends."""
        from netrun_ws.testing import build_app, serve

        async with contextlib.AsyncExitStack() as stack:

            async def start(
                config: Mapping[str, Any] | str | os.PathLike[str], **overrides: Any
            ) -> ServedApp:
                app = build_app(config, **overrides)
                return await stack.enter_async_context(serve(app, ws_protocol=netrun_ws_protocol))

            yield start

    @async_fixture
    async def netrun_server(netrun_config: dict[str, Any], netrun_serve: Serve) -> ServedApp:
        """``netrun_config`` served for this test (:class:`netrun_ws.testing.ServedApp`)."""
        return await netrun_serve(netrun_config)

    @async_fixture
    async def netrun_client(netrun_server: ServedApp) -> Client:
        """A client connected to ``netrun_server`` as user ``alice``, its welcome read."""
        return await netrun_server.connect("alice")

else:

    @pytest.fixture
    def netrun_serve() -> None:
        pytest.fail(_NEEDS)

    @pytest.fixture
    def netrun_server() -> None:
        pytest.fail(_NEEDS)

    @pytest.fixture
    def netrun_client() -> None:
        pytest.fail(_NEEDS)
