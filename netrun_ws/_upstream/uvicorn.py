"""uvicorn internals that netrun-ws's websocket protocol (netrun_ws.transport.websocket) builds on.

Tested with uvicorn 0.54 (:data:`TESTED`). ``NetrunWebSocketProtocol`` subclasses uvicorn's
``websockets-sansio`` protocol, :class:`WebSocketsSansIOProtocol`, and relies on:

- its ``__init__`` setting up exactly the attributes in :data:`STATE`: netrun-ws's ``__init__``
  sets them itself instead of calling it (the lean handshake), so state a release adds would be
  missing;
- the methods in :data:`METHODS`, which it overrides or calls, keeping uvicorn's meaning;
  ``schedule_ping`` being how ``start_keepalive`` and ``handle_pong`` arm the next ping, and
  ``ping_timer`` only ever cancelled (netrun-ws arms it on its own timer heap); ``handle_text``
  and ``handle_bytes`` starting a message's ``frames`` as a new list that ``handle_cont`` only
  appends to (between messages netrun-ws leaves a shared empty tuple there);
- ``handle_connect`` keeping the parsed ``request``, the ``response`` websockets prepared and
  the ASGI ``scope`` on the protocol (``NetrunWebSocketProtocol.connect_parsed`` does what it
  does for a request handed over parsed, the scope's header list made from httptools' bytes:
  the guard test compares the two, accepted and refused), and ``send`` answering
  ``websocket.accept`` the way ``NetrunWebSocketProtocol._accept`` repeats it (uvicorn's
  default headers, the app's headers, the subprotocol, then keepalive pings);
- ``run_asgi`` being the task ``handle_connect`` starts for the app (registered in ``tasks``,
  removed by ``on_task_complete``), which closes the transport once the app returns, answers
  500 through ``send_500_response`` when the app fails before the handshake, and treats
  :class:`ClientDisconnected` as a normal end: netrun-ws's protocol runs the app the same way,
  except that an app which handed its connection to ``serve_after_app`` returns with the socket
  open;
- :class:`ServerState`'s ``connections``, ``tasks`` and ``default_headers``, and
  :func:`get_client_addr` / :func:`get_path_with_query_string` for the access-log line.

:func:`refusal` checks the release, ``__init__``'s parameters (uvicorn's HTTP protocols build
the websocket protocol by keyword) and stored attributes, and the methods.
tests/upstream/test_uvicorn.py checks the rest against a real uvicorn protocol and server.
"""

from __future__ import annotations

import dis
import inspect
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected, get_client_addr, get_path_with_query_string
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from netrun_ws._upstream import ReleaseRange

__all__ = [
    "METHODS",
    "STATE",
    "TESTED",
    "ClientDisconnected",
    "ServerState",
    "WebSocketsSansIOProtocol",
    "get_client_addr",
    "get_path_with_query_string",
    "refusal",
    "stored_attributes",
]

TESTED = ReleaseRange("uvicorn", (0, 54), (0, 55))

#: What WebSocketsSansIOProtocol.__init__ sets up, as of 0.54.
STATE = frozenset(
    {
        "app",
        "app_state",
        "asgi_version",
        "client",
        "close_sent",
        "close_timeout",
        "close_timer",
        "config",
        "conn",
        "connections",
        "curr_msg_data_type",
        "default_headers",
        "disconnected",
        "frames",
        "handshake_complete",
        "handshake_initiated",
        "initial_response",
        "last_ping_rtt",
        "logger",
        "loop",
        "pending_ping_payload",
        "ping_interval",
        "ping_sent_at",
        "ping_timeout",
        "ping_timer",
        "pong_timer",
        "queue",
        "read_paused",
        "root_path",
        "scheme",
        "server",
        "tasks",
        "transport",
        "writable",
    }
)

#: The methods of WebSocketsSansIOProtocol that netrun-ws's protocol overrides or calls.
METHODS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "handle_events",
    "handle_connect",
    "handle_text",
    "handle_bytes",
    "handle_cont",
    "handle_ping",
    "handle_pong",
    "handle_close",
    "handle_parser_exception",
    "send_receive_event_to_app",
    "start_keepalive",
    "stop_keepalive",
    "shutdown",
    "schedule_ping",
    "send_keepalive_ping",
    "send",
    "receive",
    "run_asgi",
    "send_500_response",
    "on_task_complete",
)

_INIT_PARAMETERS = ["self", "config", "server_state", "app_state", "_loop"]


def stored_attributes(function: Callable[..., Any]) -> frozenset[str]:
    """The attribute names ``function``'s own code assigns (``x.name = ...``)."""
    return frozenset(
        str(instruction.argval)
        for instruction in dis.get_instructions(function)
        if instruction.opname == "STORE_ATTR"
    )


def refusal() -> str | None:
    """Why this uvicorn's protocol is not the one netrun-ws's builds on, or None."""
    if reason := TESTED.refusal():
        return reason
    init = WebSocketsSansIOProtocol.__init__
    if list(inspect.signature(init).parameters) != _INIT_PARAMETERS:
        return f"uvicorn's websocket protocol takes {inspect.signature(init)}"
    if added := stored_attributes(init) - STATE:
        return f"uvicorn's websocket protocol sets up state netrun-ws's does not: {sorted(added)}"
    base = WebSocketsSansIOProtocol
    if missing := [name for name in METHODS if not callable(getattr(base, name, None))]:
        return f"uvicorn's websocket protocol has no {missing}"
    return None
