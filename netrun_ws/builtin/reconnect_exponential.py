"""reconnect: exponential - tells clients how to reconnect (exponential backoff with jitter).

The policy (ReconnectionConfig) is sent in the welcome message under ``reconnect``; clients
should follow it after a close code that says "reconnect" (see docs/protocol.md).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from netrun_ws import hookimpl
from netrun_ws.reconnection import ReconnectionConfig


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    initial_delay: float = Field(1.0, ge=0, description="First delay, seconds.")
    max_delay: float = Field(60.0, ge=0, description="Delay cap, seconds.")
    max_attempts: int = Field(10, ge=0, description="Attempts before giving up (0 = unlimited).")
    backoff_multiplier: float = Field(2.0, ge=1, description="Delay growth per attempt.")
    jitter: bool = Field(True, description="Randomise delays so clients do not reconnect in step.")

    @model_validator(mode="after")
    def _ordered(self) -> Options:
        if self.max_delay < self.initial_delay:
            raise ValueError("max_delay must be >= initial_delay")
        return self


class Plugin:
    def __init__(self) -> None:
        self.policy: dict[str, Any] = ReconnectionConfig().to_client_policy()

    @hookimpl
    def configure(self, options: Options) -> None:
        self.policy = ReconnectionConfig(**options.model_dump()).to_client_policy()

    @hookimpl
    def welcome_payload(self) -> dict[str, Any]:
        return {"reconnect": self.policy}
