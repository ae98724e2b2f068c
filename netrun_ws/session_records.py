"""The records of netrun-websocket 1.0's session manager: ``WebSocketConnection``, ``SessionState``.

``WebSocketSessionManager.get_connection`` returns a ``WebSocketConnection``. Its dataclass
fields are 1.0's (``record.connected_at`` is an ISO 8601 string in UTC, as in 1.0). It is also a
read-only mapping with netrun-ws's documented dict (``record["connected_at"]`` is epoch seconds,
``record["state"]`` is ``"connected"``), so code written against either keeps working.
``SessionState`` is 1.0's record of the application state a session saved.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

__all__ = ["SessionState", "WebSocketConnection"]

#: The keys of the mapping view: netrun-ws's connection dict.
_MAPPING_KEYS = (
    "connection_id",
    "session_id",
    "user_id",
    "username",
    "connected_at",
    "last_heartbeat",
    "client_ip",
    "user_agent",
    "tab_id",
    "metadata",
    "state",
)
_TIME_KEYS = ("connected_at", "last_heartbeat")


def _iso_utc(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="microseconds")


def _epoch(iso: str) -> float:
    moment = datetime.fromisoformat(iso)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class _EpochTimes:
    """The exact epoch times behind the ISO strings (ISO text keeps only microseconds)."""

    __slots__ = ("_epochs",)
    _epochs: tuple[float, float] | None


@dataclass(frozen=True, slots=True, eq=False)
class WebSocketConnection(_EpochTimes, Mapping[str, Any]):
    """A connection registered with the session manager.

    Attributes are 1.0's, times as ISO 8601 strings in UTC. The mapping view gives netrun-ws's
    dict: the same keys plus ``state`` (always ``"connected"``), times as epoch seconds.
    Equality is a mapping's: equal to any mapping (dict or record) with the same items.
    """

    connection_id: str
    session_id: str
    user_id: str
    username: str
    connected_at: str
    last_heartbeat: str
    client_ip: str | None = None
    user_agent: str | None = None
    tab_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_epochs", None)  # read from the ISO strings when asked

    @classmethod
    def from_epochs(
        cls, *, connected_at: float, last_heartbeat: float, **record: Any
    ) -> WebSocketConnection:
        """A record from epoch-second times (kept exactly for the mapping view)."""
        made = cls(
            connected_at=_iso_utc(connected_at), last_heartbeat=_iso_utc(last_heartbeat), **record
        )
        object.__setattr__(made, "_epochs", (connected_at, last_heartbeat))
        return made

    # Copies and pickles keep the exact times too (a slots dataclass's own state has fields only).
    def __getstate__(self) -> tuple[Any, ...]:
        return (*(getattr(self, name) for name in _FIELD_NAMES), self._epochs)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip((*_FIELD_NAMES, "_epochs"), state, strict=True):
            object.__setattr__(self, name, value)

    def __getitem__(self, key: str) -> Any:
        if key in _TIME_KEYS:
            epochs = self._epochs or (_epoch(self.connected_at), _epoch(self.last_heartbeat))
            return epochs[_TIME_KEYS.index(key)]
        if key == "state":
            return "connected"
        if key not in _MAPPING_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_MAPPING_KEYS)

    def __len__(self) -> int:
        return len(_MAPPING_KEYS)

    def to_dict(self) -> dict[str, Any]:
        """The mapping view as a plain dict (for ``json.dumps``; ``metadata`` copied)."""
        return {**self, "metadata": dict(self.metadata)}


_FIELD_NAMES = tuple(item.name for item in fields(WebSocketConnection))


@dataclass(slots=True)
class SessionState:
    """The application state netrun-websocket 1.0 saved for a session (its fields, as in 1.0).

    netrun-ws's ``WebSocketSessionManager`` stores any JSON dict as a session's state
    (``save_connection_state``); ``SessionState(...).to_dict()`` is one such dict.
    """

    conversation_id: str | None = None
    active_workspace_id: int | None = None
    active_persona_id: int | None = None
    voice_session_config: dict[str, Any] | None = None
    emotion_history: list[dict[str, Any]] = field(default_factory=list)
    recent_messages: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of every field (lists and dicts copied)."""
        return asdict(self)
