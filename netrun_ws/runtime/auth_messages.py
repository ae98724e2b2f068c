"""The messages the host itself understands: first-message authentication, token refresh, and
a resume's ``since`` sent as a frame."""

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


class SincePosition(BaseModel):
    """The last position a client received on one channel."""

    model_config = ConfigDict(extra="forbid")
    offset: int = Field(ge=0)
    epoch: str = Field(min_length=1, max_length=64)


class SinceMessage(BaseModel):
    """``{"type": "since", "channels": {channel: {"offset": N, "epoch": E}, ...}}``: a resume's
    positions as the first frame after the handshake, when the request carried
    ``since_frame=1`` (for more channels than fit in its URL). Checked like the ``since`` query
    value (:func:`netrun_ws.runtime.recovery.since_positions`); this model describes it."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["since"]
    channels: dict[str, SincePosition]
