"""``serve``: a netrun-ws app built from a config and served by a real uvicorn server on a free
loopback port, in the test's own event loop; ``ServedApp`` connects clients to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import uvicorn
from starlette.types import Message, Receive, Scope, Send
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from netrun_ws import client as package_client
from netrun_ws.app import NetrunApp, create_app
from netrun_ws.cli import guard_connections, protocol_settings
from netrun_ws.host import Host
from netrun_ws.testing.client import DEFAULT_TIMEOUT, Client

__all__ = ["Serve", "ServedApp", "ServerStartError", "base_config", "build_app", "serve"]

#: What a test config starts from: anonymous auth (``?user_id=`` picks the user), the memory
#: store, no heartbeat pings, no metrics sink, no plugins_dir.
_BASE: dict[str, Any] = {
    "auth": {"plugin": "anonymous"},
    "store": {"plugin": "memory"},
    "heartbeat": None,
    "metrics": [],
    "plugins_dir": None,
    "plugins": [],
}


def base_config(**overrides: Any) -> dict[str, Any]:
    """A config dict for tests (anonymous auth, memory store, no heartbeat, no metrics) with
    ``overrides`` replacing whole top-level keys (``plugins=[...]``, ``limits={...}``)."""
    config = {
        key: (dict(value) if isinstance(value, dict) else value) for key, value in _BASE.items()
    }
    config.update(overrides)
    return config


def build_app(config: Mapping[str, Any] | str | os.PathLike[str], **overrides: Any) -> NetrunApp:
    """The app for a config dict (merged over :func:`base_config`, ``overrides`` on top) or a
    YAML file (as is; ``overrides`` are then refused). Raises ``ConfigError``/``PluginLoadError``
    like ``create_app``."""
    if isinstance(config, Mapping):
        return create_app(base_config(**{**config, **overrides}))
    if overrides:
        raise TypeError("overrides apply to a config dict, not to a YAML file")
    return create_app(config)


class ServerStartError(RuntimeError):
    """The served app did not start: ``str()`` is its one line (``start-up failed: plugin
    'NAME' (ORIGIN): failed in startup: ...``, as ``netrun-ws run`` prints it)."""


#: The ``netrun_serve`` fixture: ``await netrun_serve(config, **overrides)`` serves another app.
Serve = Callable[..., Awaitable["ServedApp"]]


class ServedApp:
    """An app being served: ``app``, ``host``, ``addr`` (``"127.0.0.1:PORT"``), ``http_url``;
    :meth:`connect` (a test :class:`Client`) and :meth:`client` (the package's own client)."""

    def __init__(
        self,
        app: NetrunApp,
        addr: str,
        timeout: float = DEFAULT_TIMEOUT,
        server: uvicorn.Server | None = None,
        task: asyncio.Task[None] | None = None,
    ) -> None:
        self.app = app
        self.addr = addr
        self.timeout = timeout
        self.clients: list[Client] = []
        #: The package's own clients (:meth:`client`), closed with the test clients.
        self.app_clients: list[package_client.Client] = []
        self._server = server
        self._task = task

    async def stop(self) -> None:
        """Close the clients and stop the server (the lifespan's shutdown runs: connections are
        closed, ``shutdown`` hooks run). Done at the end of :func:`serve` if not before."""
        await self.close_clients()
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, ServerStartError):
            await asyncio.wait_for(task, self.timeout * 2)

    @property
    def host(self) -> Host:
        host: Host = self.app.state.host
        return host

    @property
    def http_url(self) -> str:
        return f"http://{self.addr}"

    def ws_url(self, user_id: str | None = None, **query: str) -> str:
        """The websocket URL, with ``?user_id=`` (anonymous auth) and any other query."""
        params = {"user_id": user_id, **query} if user_id is not None else dict(query)
        suffix = f"?{urlencode(params)}" if params else ""
        return f"ws://{self.addr}{self.host.config.server.path}{suffix}"

    async def connect(
        self,
        user_id: str | None = None,
        *,
        welcome: bool = True,
        headers: Mapping[str, str] | None = None,
        subprotocols: list[str] | None = None,
        **query: str,
    ) -> Client:
        """Connect a client (closed at teardown). With ``welcome`` (default) its welcome is read
        and asserted (``client.welcome``); pass ``welcome=False`` to see a refusal yourself."""
        websocket = await asyncio.wait_for(
            ws_connect(
                self.ws_url(user_id, **query),
                additional_headers=dict(headers or {}),
                subprotocols=subprotocols,  # type: ignore[arg-type]
                open_timeout=self.timeout,
                max_size=None,
            ),
            self.timeout,
        )
        client = Client(websocket, self.timeout)
        self.clients.append(client)
        if welcome:
            client.welcome = await client.expect("connect")
        return client

    async def client(
        self,
        user_id: str | None = None,
        *,
        params: Mapping[str, str] | None = None,
        **options: Any,
    ) -> package_client.Client:
        """The package's own client (:class:`netrun_ws.client.Client`: answers pings, reconnects,
        resumes its session, recovers missed messages), started on this app, its welcome read
        (``client.welcome``); closed at teardown. ``user_id`` goes in ``?user_id=`` (anonymous
        auth), ``params`` are more query parameters, ``options`` go to the client (``token=``,
        ``headers=``, ``registry=``, ``reconnect=``, ...). Use it to test a plugin the way an
        application will use it; :meth:`connect` gives a bare client that asserts replies."""
        query = {**({"user_id": user_id} if user_id is not None else {}), **(params or {})}
        options.setdefault("open_timeout", self.timeout)
        app_client = package_client.Client(self.ws_url(), params=query, **options)
        self.app_clients.append(app_client)
        await asyncio.wait_for(app_client.start(), self.timeout)
        return app_client

    async def refused(
        self,
        user_id: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        subprotocols: list[str] | None = None,
        **query: str,
    ) -> int:
        """Connect expecting the upgrade to be refused; returns the HTTP status (401, 403, 429,
        503). AssertionError when the server accepted the connection."""
        try:
            client = await self.connect(
                user_id, welcome=False, headers=headers, subprotocols=subprotocols, **query
            )
        except InvalidStatus as refusal:
            return refusal.response.status_code
        await client.close()
        raise AssertionError("the server accepted the connection")

    async def close_clients(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), self.timeout)
        self.clients.clear()
        for app_client in self.app_clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(app_client.close(), self.timeout)
        self.app_clients.clear()


@contextlib.asynccontextmanager
async def serve(
    app: NetrunApp | Mapping[str, Any] | str | os.PathLike[str],
    *,
    ws_protocol: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    **uvicorn_settings: Any,
) -> AsyncIterator[ServedApp]:
    """Serve ``app`` (or the app of a config dict/file, see :func:`build_app`) on 127.0.0.1 and a
    free port, with the ASGI lifespan (the store and ``startup`` hooks run), as ``netrun-ws run``
    serves it (its ``server.ws_protocol`` unless ``ws_protocol`` is given). On exit the clients
    are closed and the server stops (``shutdown`` hooks run). Raises :class:`ServerStartError`
    when the app fails to start (a ``startup`` hook or the store)."""
    if not isinstance(app, NetrunApp):
        app = build_app(app)
    limits = app.state.host.config.limits
    uvicorn_settings = {
        **protocol_settings(app.state.host.config, ws_protocol),
        **uvicorn_settings,
    }
    uvicorn_settings.setdefault("log_level", "warning")
    uvicorn_settings.setdefault("lifespan", "on")
    failures: list[str] = []

    async def watched(scope: Scope, receive: Receive, send: Send) -> None:
        """The app, with its start-up failure kept to raise it here, not only logged."""
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def watching(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                failures.append(str(message.get("message", "")))
            await send(message)

        await app(scope, receive, watching)

    uvicorn_config = uvicorn.Config(watched, host="127.0.0.1", port=0, **uvicorn_settings)
    guard_connections(uvicorn_config, limits)  # the request deadlines `netrun-ws run` has
    server = uvicorn.Server(uvicorn_config)

    async def serving() -> None:
        try:
            await server.serve()
        except SystemExit:  # uvicorn's exit when start-up fails: the loop must not see it
            reason = failures[0] if failures else "the server stopped before it started"
            raise ServerStartError(reason) from None

    task = asyncio.create_task(serving())
    # Stops the server however this ends (a start-up failure, the test failing, or done).
    served = ServedApp(app, "", timeout, server, task)
    try:
        async with asyncio.timeout(timeout):
            while not server.started:
                if task.done():
                    task.result()  # re-raise why start-up failed
                    raise ServerStartError("the server stopped before it started")
                await asyncio.sleep(0.005)
        served.addr = f"127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        yield served
    finally:
        await served.stop()
