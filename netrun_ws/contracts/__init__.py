"""Contracts a machine can read: the JSON Schema of ``netrun_ws.yaml`` (``netrun-ws schema``), the
AsyncAPI document of the websocket protocol (``netrun-ws asyncapi``) and TypeScript declarations
of every message (``netrun-ws typescript``). Private: the commands are the interface.
"""

from __future__ import annotations

__all__: list[str] = []
