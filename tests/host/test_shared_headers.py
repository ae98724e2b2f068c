"""The scope's header list keeps common header names and fields once per process
(``netrun_ws.transport.shared_headers``), and stays equal, field for field and in order, to what
the client sent; an accepted connection's path and raw path are kept once per path, and its host
field once per host."""

from __future__ import annotations

import pytest

from netrun_ws.testing import Serve
from netrun_ws.transport import shared_headers
from netrun_ws.transport.shared_headers import learn_field, share_headers
from tests.host.helpers import base_config, only_connection


def test_equal_lists_with_common_names_and_fields_kept_once() -> None:
    def fresh(text: str) -> bytes:
        return bytes(text, "ascii")  # a new object each time, as uvicorn makes them

    sent = [
        (fresh("host"), fresh("example.org")),
        (fresh("upgrade"), fresh("websocket")),
        (fresh("x-custom"), fresh("1")),
        (fresh("cookie"), fresh("a=1")),
        (fresh("cookie"), fresh("b=2")),
    ]
    first = share_headers(list(sent))
    second = share_headers([(name, value) for name, value in sent])
    assert first == sent and second == sent
    assert first is not sent
    assert first[1] is second[1]  # upgrade: websocket, the whole field
    assert first[0][0] is second[0][0] and first[3][0] is second[4][0]  # common names
    assert first[0][1] is sent[0][1]  # values other than the common fields are the request's
    assert first[2] == (b"x-custom", b"1") and first[2][0] is sent[2][0]


async def test_a_served_connection_sees_every_header_it_sent(netrun_serve: Serve) -> None:
    server = await netrun_serve(base_config())
    await server.connect("u", headers={"X-Custom": "one", "Cookie": "a=1"})
    seen = only_connection(server.app).websocket.scope["headers"]
    assert (b"x-custom", b"one") in seen and (b"cookie", b"a=1") in seen
    assert (b"upgrade", b"websocket") in seen
    assert [name for name, _ in seen].count(b"host") == 1


def test_a_learned_host_field_is_shared_by_later_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared_headers, "_LEARNED", {})  # learned once per process otherwise
    value = b"learned.example:8000"
    host = (b"host", bytes(value))
    assert share_headers([(b"host", value)])[0] is not host
    learn_field((b"upgrade", b"websocket"))  # not a host field: nothing learned
    learn_field(host)
    learn_field((b"host", bytes(value)))  # known already: the first one stays
    later = share_headers([(b"host", bytes(value)), (b"x-a", b"1")])
    assert later == [host, (b"x-a", b"1")] and later[0] is host


async def test_connections_accepted_at_one_path_share_its_path_objects(
    served_ws_protocol: str, netrun_serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Room for this server's host (each test server's port makes another host value).
    monkeypatch.setattr(shared_headers, "_LEARNED", {})
    # netrun-ws's protocol keeps one path and raw_path per accepted path (uvicorn makes both
    # anew for each request); the scope reads the same either way.
    server = await netrun_serve(base_config())
    await server.connect("u1")
    await server.connect("u2")
    first, second = (c.websocket.scope for c in server.app.state.host.manager.connections())
    assert (first["path"], first["raw_path"]) == (second["path"], second["raw_path"])
    assert (first["path"], first["raw_path"]) == ("/ws", b"/ws")
    (host,) = [field for field in first["headers"] if field[0] == b"host"]
    (other,) = [field for field in second["headers"] if field[0] == b"host"]
    assert host == other and host[1].startswith(b"127.0.0.1:")
    if served_ws_protocol == "netrun":
        assert first["path"] is second["path"] and first["raw_path"] is second["raw_path"]
        assert host is other  # the first connection's, learned when it was accepted
