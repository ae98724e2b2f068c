"""uvicorn's httptools HTTP protocol, which netrun_ws.transport.http subclasses.

Tested with uvicorn 0.54, as :mod:`netrun_ws._upstream.uvicorn` (importing it needs httptools,
from ``uvicorn[standard]``). ``NetrunHttpToolsProtocol`` relies on:

- :class:`HttpToolsProtocol` calling ``handle_websocket_upgrade()`` once an upgrade request's
  head is parsed, which it overrides; and ``_should_upgrade()`` answering from the request's
  ``headers`` alone (it asks twice per upgrade request: the answer is kept per header list);
- the request as the protocol keeps it by then: ``scope["method"]``, ``url`` (the target's
  bytes), ``headers`` (the fields as httptools read them), and ``client``, ``server`` and
  ``scheme`` (the addresses the websocket protocol would otherwise look up again);
- ``ws_protocol_class``, ``config``, ``server_state``, ``app_state``, ``connections``,
  ``transport`` and ``logger`` (with :data:`TRACE_LOG_LEVEL`), as uvicorn's own upgrade uses them;
- ``parser`` and ``cycle`` being what ties the protocol to httptools' parser, so that clearing
  them after the hand-over frees both at once.

tests/upstream/test_uvicorn.py checks the hand-over against a real server.
"""

from __future__ import annotations

from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from netrun_ws._upstream.uvicorn import TESTED

__all__ = ["TRACE_LOG_LEVEL", "HttpToolsProtocol", "refusal"]


def refusal() -> str | None:
    """Why this uvicorn's httptools protocol is not the one netrun-ws's builds on, or None."""
    if reason := TESTED.refusal():
        return reason
    for name in ("handle_websocket_upgrade", "_should_upgrade"):
        if not callable(getattr(HttpToolsProtocol, name, None)):
            return f"uvicorn's httptools protocol has no {name}"
    return None
