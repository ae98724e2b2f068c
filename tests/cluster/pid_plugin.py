"""Tells each client which worker process serves it: ``{"pid": ...}`` in the welcome."""

from __future__ import annotations

import os

from netrun_ws import hookimpl


@hookimpl
def welcome_payload() -> dict[str, int]:
    return {"pid": os.getpid()}
