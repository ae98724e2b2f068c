"""The messages the host itself sends and understands, as pydantic models: the one description of
them that docs/protocol.md, the AsyncAPI document and the TypeScript declarations are read from.

The host builds these messages as plain dicts on its hot paths; the models describe them (a test
checks the real frames against them). Plugins' message types come from their own models
(``register_message_types``), not from here; so do ``auth`` and ``refresh``, which the host parses
with the models of ``runtime/auth_messages.py``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from netrun_ws.runtime.auth_messages import AuthMessage, RefreshMessage, SinceMessage


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Position(BaseModel):
    """Where a channel is: the last offset in its current epoch."""

    model_config = ConfigDict(extra="forbid")

    offset: int = Field(ge=0, description="Last assigned offset on the channel (0: none yet).")
    epoch: str = Field(
        description="Opaque; changes whenever the history behind the channel was lost."
    )


class ChannelPosition(Position):
    """The reserved ``pos`` key of every message delivered on a channel (a room or a user)."""

    channel: str = Field(description="'room:<room>' or 'user:<user_id>'.")
    offset: int = Field(ge=1, description="Starts at 1, +1 per message on the channel.")


class HeartbeatPolicy(BaseModel):
    """The welcome's ``heartbeat`` (when a heartbeat plugin is configured)."""

    interval: float = Field(description="Seconds between the server's pings.")
    timeout: float = Field(description="Seconds without any frame before the server closes (4100).")
    max_missed: int = Field(description="Intervals a client may miss before it is closed.")


class ReconnectPolicy(BaseModel):
    """The welcome's ``reconnect`` (when a reconnect plugin is configured): how to back off."""

    strategy: Literal["exponential"]
    initial_delay: float = Field(description="Seconds before the first retry.")
    max_delay: float = Field(description="Largest delay in seconds.")
    max_attempts: int = Field(description="Retries before giving up.")
    backoff_multiplier: float = Field(description="Each delay is the previous times this.")
    jitter: Literal["equal", "none"] = Field(
        description="'equal': wait a uniform random time in [delay/2, delay]; 'none': delay."
    )


class Welcome(BaseModel):
    """The server's first message on every connection."""

    model_config = ConfigDict(extra="allow")  # plugins add fields (welcome_payload hook)

    type: Literal["connect"]
    connection_id: str
    user_id: str
    session_id: str = Field(description="Resume with ?session_id= after a disconnect.")
    resumed: bool = Field(description="The session's saved state and rooms came back.")
    heartbeat: HeartbeatPolicy | None = None
    reconnect: ReconnectPolicy | None = None
    state: dict[str, JsonValue] | None = Field(
        default=None, description="When resumed: what plugins kept for the session."
    )
    rooms: list[str] | None = Field(default=None, description="When resumed: the rooms rejoined.")
    positions: dict[str, Position] | None = Field(
        default=None,
        description="Current position of the user channel and of every room the connection is in.",
    )
    max_since_channels: int | None = Field(
        default=None,
        description="With positions: the most channels a resume's since may name on this server.",
    )
    since_frame: bool | None = Field(
        default=None,
        description=(
            "With positions: this server reads a resume's positions from a since frame "
            "(since_frame=1), for more channels than fit in a URL."
        ),
    )


class Ping(_Message):
    """Sent by the heartbeat plugin every interval (answer pong); a client may send one too."""

    type: Literal["ping"]


class Pong(_Message):
    """The answer to a ping."""

    type: Literal["pong"]


class ErrorReply(_Message):
    """A refused message; the connection stays open."""

    type: Literal["error"]
    error: str = Field(description="Human-readable text.")
    code: str = Field(description="An ErrorCode value (netrun_ws/codes.py) or a plugin's own.")
    details: JsonValue = Field(description="Depends on the code (docs/protocol.md).")


class Refreshed(_Message):
    """A refresh was accepted."""

    type: Literal["refreshed"]
    expires_at: float | None = Field(description="Unix time the new credentials expire.")


class Disconnect(_Message):
    """Sent just before the server closes the connection to restart (close code 1012)."""

    type: Literal["disconnect"]
    code: int = Field(description="The close code that follows.")
    reason: str
    session_id: str = Field(description="Reconnect with backoff and resume this session.")


class DeliveryGap(_Message):
    """Messages published on other nodes between these unix times may be lost (Redis outage)."""

    type: Literal["delivery_gap"]
    since: float
    until: float


class Gap(_Message):
    """A channel of a resumed session that could not be recovered; continue from here."""

    type: Literal["gap"]
    channel: str
    reason: Literal["epoch_changed", "out_of_history", "replay_limit"]
    offset: int = Field(ge=0, description="The channel's current top.")
    epoch: str


class RecoveredChannel(Position):
    """One channel of a ``recovered`` message."""

    replayed: int = Field(ge=0, description="Messages replayed (0 for a gap channel).")


class Recovered(_Message):
    """Ends the recovery of a resumed session: every channel recovered, gap channels included."""

    type: Literal["recovered"]
    channels: dict[str, RecoveredChannel]


SERVER_MESSAGES: tuple[type[BaseModel], ...] = (
    Welcome,
    Ping,
    Pong,
    ErrorReply,
    Refreshed,
    Disconnect,
    DeliveryGap,
    Gap,
    Recovered,
)
"""What the host (and the heartbeat plugin) send, whatever plugins are configured."""

CLIENT_MESSAGES: tuple[type[BaseModel], ...] = (AuthMessage, RefreshMessage, SinceMessage)
"""What the host itself reads (it registers them beside the plugins' types; the models it parses
with are the ones described)."""
