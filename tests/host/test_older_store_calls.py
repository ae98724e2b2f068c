"""A store written against the ``Store`` calls only (tests/host/older_store.py) keeps working:
admission builds a connection's open and close from those calls
(netrun_ws/runtime/connection_records.py), in the order it always made them."""

from __future__ import annotations

from netrun_ws.testing import Serve
from tests.host.helpers import wait_for
from tests.host.older_store import OlderStore

OLDER = {"plugin": "tests.host.older_store"}
OPEN = ["revoked", "claim_session", "create_connection", "add_connection"]
CLOSE = ["claim_session", "save_connection_state", "remove_connection", "disconnect"]


async def test_a_connection_opens_and_closes_through_the_older_calls(netrun_serve: Serve) -> None:
    server = await netrun_serve({"store": OLDER})
    store = server.host.store
    assert isinstance(store, OlderStore)
    client = await server.connect("alice", session_id="s-1")
    assert store.calls == OPEN
    store.calls.clear()
    await client.close()
    await wait_for(lambda: "disconnect" in store.calls)
    assert store.calls == CLOSE
    assert await store.online_users() == set()
    resumed = await server.connect("alice", session_id="s-1")
    assert resumed.welcome["resumed"] is True


async def test_refusals_through_the_older_calls_leave_nothing_registered(
    netrun_serve: Serve,
) -> None:
    server = await netrun_serve({"store": OLDER, "limits": {"max_connections_per_user": 1}})
    store = server.host.store
    assert isinstance(store, OlderStore)
    await server.connect("alice", session_id="s-1")
    assert await server.refused("bob", session_id="s-1") == 403  # another user's session
    assert await server.refused("alice") == 429  # max_connections_per_user
    assert len(await store.sessions.get_user_connections("alice")) == 1
    assert await store.sessions.get_user_connections("bob") == []
    await server.host.revoke_user("carol")
    store.calls.clear()
    assert await server.refused("carol") == 403
    assert store.calls == ["revoked"]  # nothing claimed or created for a revoked user
