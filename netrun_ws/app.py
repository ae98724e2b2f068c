"""``create_app``: a configured Host wrapped in a Starlette app, usable under any ASGI server."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from netrun_ws import redact
from netrun_ws.config import ConfigError, LoadedConfig, load_config, load_config_from_dict
from netrun_ws.host import Host
from netrun_ws.plugins.loading import PluginLoadError, describe_exception
from netrun_ws.plugins.slots import plugin_config_issues
from netrun_ws.runtime.admission import deny
from netrun_ws.runtime.client_files import client_routes
from netrun_ws.runtime.http_api import publish_routes

__all__ = ["NetrunApp", "create_app", "load_app_config"]

logger = logging.getLogger("netrun_ws")


class NetrunApp(Starlette):
    """A Starlette app whose lifespan starts and stops the Host.

    Start-up failures are reported to the server as one line (plugin, cause, file:line), so
    uvicorn prints that line instead of a traceback.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._when_started: list[Callable[[], None]] = []

    def when_started(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the lifespan startup has completed (the host and its store
        started), before the server answers any connection: ``netrun-ws run`` takes over
        SIGTERM/SIGINT there, so that no connection is served before its drain can run."""
        self._when_started.append(callback)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        host: Host = self.state.host
        if kind == "websocket" and scope["path"] == host.config.server.path:
            # The hot path skips Starlette's router and middleware wrappers around every frame;
            # serve_websocket handles its own errors.
            await host.serve_websocket(WebSocket(scope, receive, send), receive, send)
            return
        if kind != "lifespan":
            await super().__call__(scope, receive, send)
            return
        message = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            await self.state.host.start()
        except Exception as exc:
            text = str(exc) if isinstance(exc, PluginLoadError) else describe_exception(exc)
            await send({"type": "lifespan.startup.failed", "message": f"start-up failed: {text}"})
            return
        for callback in self._when_started:
            callback()
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        try:
            await self.state.host.stop()
        except Exception as exc:
            text = describe_exception(exc)
            await send({"type": "lifespan.shutdown.failed", "message": f"shutdown failed: {text}"})
            return
        await send({"type": "lifespan.shutdown.complete"})


def load_app_config(
    config: Mapping[str, Any] | str | os.PathLike[str] | None,
    *,
    env: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """Load a config (a dict, or a YAML path; default ``./netrun_ws.yaml``).

    When the config has mistakes, the plugin slots that are themselves valid are still resolved, so
    unknown plugins and bad plugin options are reported in the same ``ConfigError``.
    """
    try:
        if isinstance(config, Mapping):
            return load_config_from_dict(config, env=env, overrides=overrides)
        return load_config(config, env=env, overrides=overrides)
    except ConfigError as error:
        if error.partial is None:
            raise
        more = plugin_config_issues(error.partial)
        if not more:
            raise
        raise ConfigError([*error.issues, *more]) from None


def create_app(
    config: LoadedConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
) -> NetrunApp:
    """Build the ASGI app for a config (a loaded config, a dict, or a YAML path; default
    ``./netrun_ws.yaml``). Raises ``ConfigError`` or ``PluginLoadError`` on a bad config/plugin.

    The Host is at ``app.state.host``.
    """
    host = Host(config if isinstance(config, LoadedConfig) else load_app_config(config))
    # Keep credentials out of uvicorn's and our logs (uvicorn logs URLs, and at DEBUG headers and
    # frames): the default names and wherever a plugin says it reads one.
    redact.install(*host.redactions)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> JSONResponse:
        ready = await host.is_ready()
        body: dict[str, Any] = {"status": "ready" if ready else "not ready"}
        if host.started:
            body["node_id"] = host.store.node_id
            try:
                body["nodes"] = await host.store.nodes()
            except Exception as exc:  # the store being down is what readyz reports
                body["nodes_error"] = describe_exception(exc)
        return JSONResponse(body, status_code=200 if ready else 503)

    routes: list[BaseRoute] = [
        WebSocketRoute(host.config.server.path, host.serve_websocket),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *publish_routes(host),
        *client_routes(host),
        *host.routes,
    ]
    app = NetrunApp(routes=routes)
    app.state.host = host
    starlette_not_found = app.router.not_found

    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        # Starlette closes an upgrade to an unknown path, which servers turn into a bare 403;
        # docs/protocol.md promises 404 with a JSON body, as for every other refusal.
        if scope["type"] == "websocket":
            await deny(WebSocket(scope, receive, send), 404, "not found")
        else:
            await starlette_not_found(scope, receive, send)

    app.router.default = not_found
    return app
