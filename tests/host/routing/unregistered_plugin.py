"""Annotates ``message`` with a model nobody registers: start-up must refuse it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from netrun_ws import hookimpl


class Lost(BaseModel):
    type: Literal["lost"]


class Plugin:
    @hookimpl
    def on_message(self, message: Lost) -> None:
        return None
