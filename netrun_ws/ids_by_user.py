"""``IdsByUser``: a user's connection ids, with a user of one connection kept as that id alone.

The connection manager, the metrics collector, the memory session backend and the memory store
each index connections by user. Most users hold one connection, and a ``set`` or ``dict`` of one
id is over 200 bytes: four of them were about a tenth of an idle connection's memory. Here a
user's entry is the id itself until a second one comes, then a dict of ids (keys only), so a
user's ids keep the order they were added in.
"""

from __future__ import annotations

from collections.abc import Collection, KeysView

__all__ = ["IdsByUser"]


class IdsByUser:
    """user id -> the ids of its connections, oldest first (a plain ``str`` entry while there is
    one)."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, str | dict[str, None]] = {}

    def __len__(self) -> int:
        """How many users have an id."""
        return len(self._entries)

    def users(self) -> KeysView[str]:
        return self._entries.keys()

    def ids(self, user_id: str) -> Collection[str]:
        """``user_id``'s ids, oldest first (empty when none); a live view while it has several:
        copy it to keep it across an ``add`` or ``discard``."""
        entry = self._entries.get(user_id)
        if entry is None:
            return ()
        return (entry,) if isinstance(entry, str) else entry.keys()

    def count(self, user_id: str) -> int:
        entry = self._entries.get(user_id)
        if entry is None:
            return 0
        return 1 if isinstance(entry, str) else len(entry)

    def add(self, user_id: str, connection_id: str) -> None:
        entries = self._entries
        entry = entries.get(user_id)
        if entry is None:
            entries[user_id] = connection_id
        elif isinstance(entry, str):
            if entry != connection_id:
                entries[user_id] = {entry: None, connection_id: None}
        else:
            entry[connection_id] = None

    def discard(self, user_id: str, connection_id: str) -> None:
        entries = self._entries
        entry = entries.get(user_id)
        if entry is None:
            return
        if isinstance(entry, str):
            if entry == connection_id:
                del entries[user_id]
            return
        entry.pop(connection_id, None)
        if len(entry) == 1:
            entries[user_id] = next(iter(entry))
        elif not entry:
            del entries[user_id]
