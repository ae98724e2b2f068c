"""Registers the message types of the routing tests; its own ``on_message`` is a catch-all
(annotated ``BaseModel``) that records every type it sees and answers none."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from netrun_ws import Host, hookimpl


class Say(BaseModel):
    type: Literal["say"]
    text: str = ""


class Shout(BaseModel):
    type: Literal["shout"]
    text: str = ""


class Whisper(BaseModel):
    type: Literal["whisper"]


def seen(host: Host) -> list[tuple[str, str]]:
    """(handler, message type) in call order, shared by the routing test plugins."""
    return host.state.setdefault("seen", [])  # type: ignore[no-any-return]


@hookimpl
def register_message_types() -> list[type[BaseModel]]:
    return [Say, Shout, Whisper]


@hookimpl
def on_message(host: Host, message: BaseModel) -> None:
    seen(host).append(("catch_all", message.type))  # type: ignore[attr-defined]
