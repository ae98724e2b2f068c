"""The scope's header list keeps common header names and fields once per process
(``netrun_ws.transport.shared_headers``), and stays equal, field for field and in order, to what
the client sent; an accepted connection's path and raw path are kept once per path."""

from __future__ import annotations

from netrun_ws.testing import Serve
from netrun_ws.transport.shared_headers import share_headers
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


async def test_connections_accepted_at_one_path_share_its_path_objects(
    served_ws_protocol: str, netrun_serve: Serve
) -> None:
    # netrun-ws's protocol keeps one path and raw_path per accepted path (uvicorn makes both
    # anew for each request); the scope reads the same either way.
    server = await netrun_serve(base_config())
    await server.connect("u1")
    await server.connect("u2")
    first, second = (c.websocket.scope for c in server.app.state.host.manager.connections())
    assert (first["path"], first["raw_path"]) == (second["path"], second["raw_path"])
    assert (first["path"], first["raw_path"]) == ("/ws", b"/ws")
    if served_ws_protocol == "netrun":
        assert first["path"] is second["path"] and first["raw_path"] is second["raw_path"]
