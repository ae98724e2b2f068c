"""Run a real uvicorn server on a free loopback port inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from netrun_ws.cli import guard_connections, protocol_settings

#: The ``server.ws_protocol`` to serve an app with when its config does not name one (None: the
#: config's default). The ``served_ws_protocol`` fixture (tests/conftest.py) sets it, so that
#: host tests run under both protocols while tests that name a protocol keep it.
default_ws_protocol: str | None = None


@contextlib.asynccontextmanager
async def serve(app: Any, port: int = 0, **config: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 and a free port (or ``port``, e.g. to restart a
    server where its clients expect it); yield ``"127.0.0.1:PORT"``.

    Extra keyword arguments go to :class:`uvicorn.Config` (e.g. ``ws_max_size``). A netrun-ws app
    gets the websocket and HTTP protocols and the deflate setting its config names
    (``server.ws_protocol``, else :data:`default_ws_protocol`; ``server.permessage_deflate``), as
    ``netrun-ws run`` gives them, and ``ws_max_size`` from ``limits.max_message_bytes``; any other
    app gets uvicorn's defaults.
    """
    host = getattr(getattr(app, "state", None), "host", None)
    if host is not None:
        ws_protocol = None
        if "ws_protocol" not in host.config.server.model_fields_set:
            ws_protocol = default_ws_protocol
        config = {**protocol_settings(host.config, ws_protocol), **config}
    config.setdefault("log_level", "warning")
    config.setdefault("lifespan", "auto")
    uvicorn_config = uvicorn.Config(app, host="127.0.0.1", port=port, **config)
    if host is not None:  # the request deadlines and limits `netrun-ws run` serves with
        guard_connections(uvicorn_config, host.config.limits)
    server = uvicorn.Server(uvicorn_config)
    # _serve() skips uvicorn's signal capture: the test process owns its signals.
    task = asyncio.create_task(server._serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # re-raise the start-up failure
                raise RuntimeError("uvicorn exited before it started")
            await asyncio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
