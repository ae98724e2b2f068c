"""The two messages the host itself understands: first-message authentication and token refresh."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AuthMessage(BaseModel):
    """``{"type": "auth", "token": ...}``: the first message when ``server.first_message_auth``."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=16384)


class RefreshMessage(BaseModel):
    """``{"type": "refresh", "token": ...}``: renew credentials before they expire."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    type: Literal["refresh"]
    token: str = Field(min_length=1, max_length=16384)
