"""netrun-ws-example: a plugin shipped as a package, discovered through its entry point."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from netrun_ws import hookimpl


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    motd: str = Field("welcome", description="Message of the day, sent in the welcome message.")


class Echo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["echo"]
    text: str = Field(max_length=1000)


class Plugin:
    def __init__(self) -> None:
        self.motd = "welcome"

    @hookimpl
    def configure(self, options: Options) -> None:
        self.motd = options.motd

    @hookimpl
    def register_message_types(self) -> list[type[BaseModel]]:
        return [Echo]

    @hookimpl
    def welcome_payload(self) -> dict[str, Any]:
        return {"motd": self.motd}

    @hookimpl
    def on_message(self, message: BaseModel) -> Any:
        if isinstance(message, Echo):
            return {"type": "echo", "text": message.text}
        return None
