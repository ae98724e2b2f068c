"""netrun-ws's test kit for plugins: serve an app built from a config in the test's own process
(real uvicorn on loopback), connect real websocket clients, assert replies, error replies and
close codes, and tear it all down.

Installed with netrun-ws as a pytest plugin (entry point ``pytest11``: fixtures ``netrun_config``,
``netrun_server``, ``netrun_client``, ``netrun_serve``; they need pytest-asyncio, in the
``testing`` extra). Without pytest, use :func:`serve` as an async context manager. docs/plugins.md
("Testing your plugin") shows both.
"""

from __future__ import annotations

from netrun_ws.testing.client import DEFAULT_TIMEOUT, Client, assert_error_reply
from netrun_ws.testing.server import (
    Serve,
    ServedApp,
    ServerStartError,
    base_config,
    build_app,
    serve,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Client",
    "Serve",
    "ServedApp",
    "ServerStartError",
    "assert_error_reply",
    "base_config",
    "build_app",
    "serve",
]
