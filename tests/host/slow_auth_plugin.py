"""A plugin whose ``authenticate`` waits ``?auth_delay=SECONDS`` before letting the auth slot
decide: the window in which a test's client vanishes between its upgrade request and accept."""

from __future__ import annotations

import asyncio

from starlette.websockets import WebSocket

from netrun_ws import hookimpl
from netrun_ws.identity import Identity


@hookimpl
async def authenticate(request: WebSocket) -> Identity | None:
    delay = request.query_params.get("auth_delay")
    if delay is not None:
        await asyncio.sleep(float(delay))
    return None
