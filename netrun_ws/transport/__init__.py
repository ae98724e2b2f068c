"""netrun-ws's protocols for uvicorn (``server.ws_protocol: netrun``, the default).

:class:`NetrunWebSocketProtocol` is uvicorn's sans-I/O websocket protocol tuned for many frames;
:class:`NetrunHttpToolsProtocol` is uvicorn's httptools protocol handing an upgrade over already
parsed. docs/architecture.md says what each changes and why.
"""

from __future__ import annotations

__all__ = ["NetrunHttpToolsProtocol", "NetrunWebSocketProtocol"]


def __getattr__(name: str) -> object:
    # Imported on first use: uvicorn's protocols (and httptools) load only where they serve.
    if name == "NetrunWebSocketProtocol":
        from netrun_ws.transport.websocket import NetrunWebSocketProtocol

        return NetrunWebSocketProtocol
    if name == "NetrunHttpToolsProtocol":
        from netrun_ws.transport.http import NetrunHttpToolsProtocol

        return NetrunHttpToolsProtocol
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
