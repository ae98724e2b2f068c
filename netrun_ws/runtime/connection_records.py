"""A connection's records in the store: one call at open, one at close.

A store implementing :class:`~netrun_ws.store.ConnectionRecords` (``MemoryStore``) makes each in
one pass. For any other store (a third-party plugin written against the ``Store`` calls),
:class:`StoreCalls` builds both from those calls, in the order admission has always made them,
so such a store keeps working unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from netrun_ws.plugins.loading import describe_exception
from netrun_ws.store import ConnectionRecords, Opened, RevocationCheck, Store, revocation_refuses

__all__ = ["StoreCalls", "forget", "records_of"]

logger = logging.getLogger("netrun_ws")

#: The calls the merged ones stand for, on the store and on its session manager.
_STORE_CALLS = ("revoked", "add_connection", "remove_connection")
_SESSION_CALLS = ("claim_session", "create_connection", "save_connection_state", "disconnect")
_MERGED_STORE = ("open_connection", "close_connection")
_MERGED_SESSION = ("claim_and_create", "save_and_disconnect")


def records_of(store: Store) -> ConnectionRecords:
    """The store itself when it makes the merged calls, else :class:`StoreCalls` over it."""
    if isinstance(store, ConnectionRecords) and not (
        _overridden_below(store, _MERGED_STORE, _STORE_CALLS)
        or _overridden_below(store.sessions, _MERGED_SESSION, _SESSION_CALLS)
    ):
        return store
    return StoreCalls(store)


def _overridden_below(obj: object, merged: Sequence[str], older: Sequence[str]) -> bool:
    """Whether a subclass overrides one of the ``older`` calls below the class that defines a
    ``merged`` one: the merged call, which does not go through that override, would skip it
    (a test store holding ``add_connection``, say)."""
    mro = type(obj).__mro__

    def definer(name: str) -> type | None:
        return next((cls for cls in mro if name in vars(cls)), None)

    merged_at = [cls for cls in map(definer, merged) if cls is not None]
    for name in older:
        at = definer(name)
        if at is not None and any(at is not cls and issubclass(at, cls) for cls in merged_at):
            return True
    return False


class StoreCalls:
    """:class:`~netrun_ws.store.ConnectionRecords` built from the ``Store`` calls."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def open_connection(
        self,
        session_id: str,
        user_id: str,
        username: str,
        max_per_user: int | None,
        revocations: Sequence[RevocationCheck],
    ) -> Opened:
        store = self._store
        if revocations and revocation_refuses(
            revocations, await store.revoked([subject for subject, _ in revocations])
        ):
            return Opened(None, "revoked")
        # Bound to its first user, on every node: nobody else resumes or replaces it.
        if not await store.sessions.claim_session(session_id, user_id):
            return Opened(None, "session_not_yours")
        store_id = await store.sessions.create_connection(session_id, user_id, username)
        try:
            admitted = await store.add_connection(store_id, user_id, max_per_user)
        except BaseException:  # failed or cancelled: the record exists, the count may too
            await forget(store, store_id, user_id)
            raise
        if not admitted:
            await forget(store, store_id, user_id, counted=False)
            return Opened(None, "user_limit")
        return Opened(store_id)

    async def close_connection(
        self, store_id: str, session_id: str | None, user_id: str, state: dict[str, Any]
    ) -> bool:
        sessions = self._store.sessions
        try:
            # Claimed again: the binding may have expired during a long connection.
            if session_id is None or not await sessions.claim_session(session_id, user_id):
                return False
            return await sessions.save_connection_state(store_id, state)
        finally:
            await forget(self._store, store_id, user_id)


async def forget(store: Store, store_id: str, user_id: str, *, counted: bool = True) -> None:
    """Release a connection's store entries; a store outage is logged, never raised."""
    try:
        if counted:
            await store.remove_connection(store_id, user_id)
        await store.sessions.disconnect(store_id, save_state=True)
    except Exception as exc:
        logger.error("session store failed on disconnect: %s", describe_exception(exc))
