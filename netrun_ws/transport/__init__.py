"""netrun-ws's protocols for uvicorn (``server.ws_protocol: netrun``, the default).

:class:`NetrunWebSocketProtocol` is uvicorn's sans-I/O websocket protocol tuned for many frames;
:class:`NetrunHttpToolsProtocol` is uvicorn's httptools protocol handing an upgrade over already
parsed. docs/architecture.md says what each changes and why. Both build on uvicorn and
websockets internals (netrun_ws._upstream); where those are not the tested ones, uvicorn's own
protocols serve instead (:func:`netrun_protocols_usable`).

Whichever protocols serve, :mod:`netrun_ws.transport.guard` (public API only) bounds every
connection from TCP accept: request deadlines, pending-connection limits, reading held while
an upgraded client's writes back up, and the frame budget in front of websocket protocols that
count no frames themselves (:mod:`netrun_ws.transport.frames`).
"""

from __future__ import annotations

from netrun_ws._upstream import usable

__all__ = [
    "NetrunHttpToolsProtocol",
    "NetrunWebSocketProtocol",
    "netrun_http_protocol_usable",
    "netrun_protocols_usable",
]


def netrun_protocols_usable() -> bool:
    """Whether :class:`NetrunWebSocketProtocol` can serve here. If not, uvicorn's own protocols
    do (the same behaviour on the wire), and a warning says why, once."""
    return usable(
        "server.ws_protocol 'netrun'", "uvicorn", "websockets", instead="uvicorn's own protocols"
    )


def netrun_http_protocol_usable() -> bool:
    """Whether :class:`NetrunHttpToolsProtocol` can serve here (httptools being installed is
    the caller's to check). If not, uvicorn's own HTTP protocol does, and a warning says why."""
    return netrun_protocols_usable() and usable(
        "netrun-ws's HTTP protocol", "uvicorn_httptools", instead="uvicorn's own"
    )


def __getattr__(name: str) -> object:
    # Imported on first use: uvicorn's protocols (and httptools) load only where they serve.
    if name == "NetrunWebSocketProtocol":
        from netrun_ws.transport.websocket import NetrunWebSocketProtocol

        return NetrunWebSocketProtocol
    if name == "NetrunHttpToolsProtocol":
        from netrun_ws.transport.http import NetrunHttpToolsProtocol

        return NetrunHttpToolsProtocol
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
