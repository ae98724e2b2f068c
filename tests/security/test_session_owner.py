"""A session id belongs to the user who created it (issue 15, point 1).

Whoever else presents it, on the node that holds it or on any other node sharing the store, is
refused with HTTP 403 ``{"error": "session_id belongs to another user"}`` (close 1008 under
first-message auth): they neither replace the owner's live connection nor resume the owner's
rooms and state. The owner still resumes and replaces it. Session ids never reach the logs.

Every server test runs on the memory store (one node) and on the Redis store (two nodes sharing
a real redis-server: the intruder tries both nodes).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from uvicorn.logging import TRACE_LOG_LEVEL
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from netrun_ws import WebSocketSessionManager, create_app, redact
from netrun_ws.codes import CloseCode
from netrun_ws.session_backends import MemorySessionBackend
from tests.host.helpers import base_config, recv_json, recv_until
from tests.security import VERBOSE_SERVER, attempt, captured_logs, claims, leaks, sign
from tests.support.manual_time import ManualTime
from tests.support.server import serve

pytestmark = pytest.mark.timeout(60)
#: Server tests run under each websocket protocol.
served = pytest.mark.usefixtures("served_ws_protocol")

ROOT = Path(__file__).resolve().parents[2]
NOT_YOURS = "session_id belongs to another user"
SECRET = "session-owner-test-secret-0123456789abcdef"


def store_config(kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if kind == "memory":
        return {"plugin": "memory"}
    redis = request.getfixturevalue("shared_redis")
    return {"plugin": "redis", "url": redis.url, "key_prefix": f"own_{uuid.uuid4().hex[:10]}"}


@contextlib.asynccontextmanager
async def nodes(store: dict[str, Any], **overrides: Any) -> AsyncIterator[list[Any]]:
    """One node on the memory store, two sharing the store with Redis; yields the apps (each
    with ``.addr``)."""
    count = 1 if store["plugin"] == "memory" else 2
    config = base_config(
        store=store, plugins=["chat"], plugins_dir=str(ROOT / "plugins"), **overrides
    )
    async with contextlib.AsyncExitStack() as stack:
        apps = []
        for _ in range(count):
            app: Any = create_app(config)  # a NetrunApp, given an .addr here
            app.addr = await stack.enter_async_context(serve(app))
            apps.append(app)
        yield apps


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    return store_config(request.param, request)


async def join(client: ClientConnection, room: str) -> None:
    await client.send(json.dumps({"type": "join", "room": room}))
    await recv_until(client, "joined")


async def refused(url: str) -> tuple[int, Any]:
    """The HTTP status and JSON body of a refused upgrade."""
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url):
            pass
    response = caught.value.response
    return response.status_code, json.loads(response.body or b"null")


def session_of(welcome: dict[str, Any]) -> str:
    return str(welcome["session_id"])


# -- the class of attack: another user presents the session id --------------------------------

#: How the victim's session id came to be: chosen by the client, or given by the server.
CHOSEN, GIVEN = "alices-tab-1", None


@served
@pytest.mark.parametrize("chosen", [CHOSEN, GIVEN])
async def test_another_user_cannot_replace_a_live_session(
    store: dict[str, Any], chosen: str | None
) -> None:
    async with nodes(store) as apps:
        query = f"&session_id={chosen}" if chosen else ""
        async with connect(f"ws://{apps[0].addr}/ws?user_id=alice{query}") as alice:
            session = session_of(await recv_json(alice))
            for app in apps:  # the node holding it, and (Redis) another node
                status, body = await refused(f"ws://{app.addr}/ws?user_id=bob&session_id={session}")
                assert (status, body) == (403, {"error": NOT_YOURS})
            # Alice was not replaced: her connection still answers.
            await join(alice, "still-here")
            assert alice.close_code is None
            assert [c.user_id for c in apps[0].state.host.manager.connections()] == ["alice"]


@served
async def test_another_user_cannot_resume_an_offline_session(store: dict[str, Any]) -> None:
    async with nodes(store) as apps:
        first = apps[0]
        async with connect(f"ws://{first.addr}/ws?user_id=alice") as alice:
            welcome = await recv_json(alice)
            await join(alice, "alices-room")
            first.state.host.connection(welcome["connection_id"]).metadata["state"]["k"] = "v"
        session = session_of(welcome)
        for app in apps:
            url = f"ws://{app.addr}/ws?user_id=bob&session_id={session}"
            assert await refused(url) == (403, {"error": NOT_YOURS})
            # User ids are compared exactly: another spelling of alice is another user.
            url = f"ws://{app.addr}/ws?user_id=Alice&session_id={session}"
            assert await refused(url) == (403, {"error": NOT_YOURS})
        # The refusals took nothing: the owner resumes on the last node with her rooms and state.
        back = await attempt(f"ws://{apps[-1].addr}/ws?user_id=alice&session_id={session}")
        assert back.welcome is not None
        assert back.welcome["resumed"] is True
        assert back.welcome["rooms"] == ["alices-room"]
        assert back.welcome["state"] == {"k": "v"}


@served
async def test_the_owner_replaces_her_own_live_session(store: dict[str, Any]) -> None:
    async with nodes(store) as apps:
        url = f"ws://{apps[0].addr}/ws?user_id=alice&session_id=tab-7"
        async with connect(url) as old:
            # Welcomed before the next one connects: a connection replaced before its welcome
            # is closed without one (with Redis, one round trip admits the next one faster than
            # the first one's resume reads its state).
            await recv_json(old)
            async with connect(url) as new:
                assert (await recv_json(new))["session_id"] == "tab-7"
            await old.wait_closed()
            assert (old.close_code, old.close_reason) == (CloseCode.NORMAL, "session replaced")


@served
async def test_first_message_auth_refuses_with_1008(store: dict[str, Any]) -> None:
    auth = {"plugin": "jwt", "secret": SECRET}
    server = {"path": "/ws", "first_message_auth": True}
    async with nodes(store, auth=auth, server=server) as apps:
        async with connect(f"ws://{apps[0].addr}/ws") as alice:
            await alice.send(json.dumps({"type": "auth", "token": sign(SECRET, "HS256", claims())}))
            session = session_of(await recv_json(alice))
            for app in apps:
                async with connect(f"ws://{app.addr}/ws?session_id={session}") as bob:
                    token = sign(SECRET, "HS256", claims("bob"))
                    await bob.send(json.dumps({"type": "auth", "token": token}))
                    await bob.wait_closed()
                assert (bob.close_code, bob.close_reason) == (CloseCode.POLICY_VIOLATION, NOT_YOURS)
            await join(alice, "still-here")


@served
async def test_refusals_hold_no_limits(store: dict[str, Any]) -> None:
    """Refused a hundred times, bob still connects with a session of his own, and alice's and
    bob's per-IP/per-user counts are what their live connections hold."""
    async with nodes(store, limits={"max_connections_per_ip": 3}) as apps:
        async with connect(f"ws://{apps[0].addr}/ws?user_id=alice") as alice:
            session = session_of(await recv_json(alice))
            for _ in range(100):
                url = f"ws://{apps[0].addr}/ws?user_id=bob&session_id={session}"
                assert (await refused(url))[0] == 403
            mine = await attempt(f"ws://{apps[0].addr}/ws?user_id=bob&session_id=bobs-own")
            assert mine.welcome is not None and mine.welcome["resumed"] is False
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"http://{apps[0].addr}/healthz")).status_code == 200


# -- session ids are secrets in logs ------------------------------------------------------------


@pytest.mark.parametrize("ws_protocol", ["netrun", "uvicorn"])
async def test_session_ids_never_reach_the_logs(
    caplog: pytest.LogCaptureFixture, ws_protocol: str
) -> None:
    caplog.set_level(TRACE_LOG_LEVEL)
    session = f"secret-session-{uuid.uuid4().hex}"
    app = create_app(base_config(server={"path": "/ws", "ws_protocol": ws_protocol}))
    with captured_logs(caplog.handler, redact.LOGGERS, level=TRACE_LOG_LEVEL):
        async with serve(app, **VERBOSE_SERVER) as addr:
            # First and later in the query, resumed by its owner, refused to another user.
            for query in (f"session_id={session}&user_id=ann", f"user_id=ann&session_id={session}"):
                outcome = await attempt(f"ws://{addr}/ws?{query}")
                assert outcome.welcome is not None and outcome.welcome["session_id"] == session
            assert (await refused(f"ws://{addr}/ws?user_id=bo&session_id={session}"))[0] == 403
    lines = [record.getMessage() for record in caplog.records]
    assert any("session_id=***" in line for line in lines), "the query was never logged"
    assert leaks(caplog.records, session) == []


# -- the store's binding, on both backends ------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def sessions(request: pytest.FixtureRequest) -> WebSocketSessionManager:
    if request.param == "memory":
        return WebSocketSessionManager(connection_ttl=60, clock=ManualTime(1_700_000_000.0))
    redis = request.getfixturevalue("shared_redis")
    return WebSocketSessionManager(redis_url=redis.url, key_prefix=f"own_{uuid.uuid4().hex[:10]}")


async def test_a_claimed_session_is_saved_and_restored_only_for_its_owner(
    sessions: WebSocketSessionManager,
) -> None:
    async with sessions:
        assert await sessions.claim_session("s1", "alice") is True
        assert await sessions.claim_session("s1", "alice") is True  # her own, again
        assert await sessions.claim_session("s1", "bob") is False
        hers = await sessions.create_connection("s1", "alice", "Alice")
        assert await sessions.save_connection_state(hers, {"k": "v"}) is True
        # A connection of bob's registered under her session id (a caller that skipped the
        # claim) neither reads nor overwrites her state.
        his = await sessions.create_connection("s1", "bob", "Bob")
        assert await sessions.restore_connection_state(his) is None
        assert await sessions.save_connection_state(his, {"k": "bob's"}) is False
        await sessions.disconnect(his, save_state=True)
        await sessions.disconnect(hers, save_state=True)
        assert await sessions.claim_session("s1", "bob") is False  # still hers after she left
        back = await sessions.create_connection("s1", "alice", "Alice")
        assert await sessions.restore_connection_state(back) == {"k": "v"}
        # Unclaimed sessions behave as before: shared by whoever uses the id.
        one = await sessions.create_connection("free", "u1", "n")
        await sessions.save_connection_state(one, {"n": 1})
        other = await sessions.create_connection("free", "u2", "n")
        assert await sessions.restore_connection_state(other) == {"n": 1}


async def test_a_binding_expires_with_the_session_and_never_leaks_old_state() -> None:
    clock = ManualTime(1_700_000_000.0)
    sessions = WebSocketSessionManager(connection_ttl=60, clock=clock)
    assert await sessions.claim_session("s1", "alice") is True
    hers = await sessions.create_connection("s1", "alice", "Alice")
    clock.advance(61)  # her binding (and connection record) expired: the id is free again
    assert await sessions.claim_session("s1", "bob") is True
    his = await sessions.create_connection("s1", "bob", "Bob")
    # Alice's late save is refused rather than handed to bob.
    assert await sessions.save_connection_state(hers, {"k": "v"}) is False
    assert await sessions.restore_connection_state(his) is None
    assert await sessions.claim_session("s1", "alice") is False


@pytest.mark.parametrize(
    ("method", "args", "named"),
    [
        ("claim_session", ("", "alice"), "session_id"),
        ("claim_session", ("s", None), "user_id"),
        ("claim_session", ("s" * 513, "alice"), "session_id"),
    ],
)
async def test_claim_session_bad_arguments(method: str, args: tuple[Any, ...], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        await getattr(WebSocketSessionManager(), method)(*args)


async def test_expired_sessions_do_not_pile_up_in_memory() -> None:
    """Every connection claims a session and saves its state at close; sessions nobody resumes
    are never read again, so the memory store sweeps the expired ones as it grows."""
    clock = ManualTime(1_700_000_000.0)
    sessions = WebSocketSessionManager(connection_ttl=60, clock=clock)
    backend = sessions._backend
    assert isinstance(backend, MemorySessionBackend)
    for batch in range(20):
        for i in range(1000):
            session = f"s{batch}-{i}"
            assert await sessions.claim_session(session, "u")
            cid = await sessions.create_connection(session, "u", "n")
            await sessions.save_connection_state(cid, {"i": i})
            await sessions.disconnect(cid, save_state=True)
        clock.advance(61)  # every session of this batch expires
    # 20,000 sessions came and went; at most about two batches' worth are held.
    assert backend.stored_entries() <= 4 * 1000 + 1024
