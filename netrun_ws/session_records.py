"""The records of netrun-websocket 1.0's session manager: ``WebSocketConnection``, ``SessionState``.

``WebSocketSessionManager.get_connection`` returns a ``WebSocketConnection``. It is a dataclass
(1.0's attribute access: ``record.user_id``) and also a read-only mapping with the same keys
(netrun-ws's documented dict access: ``record["user_id"]``, ``record == {...}``), so code
written against either keeps working. ``to_dict()`` gives a plain dict (for ``json.dumps``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["SessionState", "WebSocketConnection"]


@dataclass(frozen=True, slots=True, eq=False)
class WebSocketConnection(Mapping[str, Any]):
    """A connection registered with the session manager. Times are epoch seconds.

    ``state`` is netrun-ws's addition: always ``"connected"`` for a record the manager returns.
    Equality is a mapping's: equal to any mapping (dict or record) with the same items.
    """

    connection_id: str
    session_id: str
    user_id: str
    username: str
    connected_at: float = field(default_factory=time.time)
    last_heartbeat: float = field(default_factory=time.time)
    client_ip: str | None = None
    user_agent: str | None = None
    tab_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    state: str = "connected"

    def __getitem__(self, key: str) -> Any:
        if key not in _CONNECTION_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_CONNECTION_KEYS)

    def __len__(self) -> int:
        return len(_CONNECTION_KEYS)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of every field (``metadata`` copied)."""
        return asdict(self)


_CONNECTION_KEYS = tuple(item.name for item in fields(WebSocketConnection))


@dataclass(slots=True)
class SessionState:
    """State saved for a session, so a reconnecting client gets it back.

    ``WebSocketSessionManager.save_connection_state`` stores ``state``;
    ``restore_connection_state`` returns it as a dict. ``saved_at`` is epoch seconds.
    """

    session_id: str
    user_id: str
    state: dict[str, Any] = field(default_factory=dict)
    connection_id: str | None = None
    saved_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of every field (``state`` copied)."""
        return asdict(self)
