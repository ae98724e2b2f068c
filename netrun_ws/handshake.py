"""``Handshake``: what a client sent with its upgrade request, typed (``connection.handshake``).

Plugins read query parameters, headers, the client address and the negotiated subprotocol here
instead of reaching into the Starlette ``WebSocket``. Built on first use from the request's ASGI
scope (most connections are never asked), then kept with the connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Headers, QueryParams
from starlette.websockets import WebSocket

__all__ = ["SUBPROTOCOL", "Handshake", "answered_subprotocol"]

#: The WebSocket subprotocol the server answers when a client offers it (e.g. next to a
#: "bearer.<token>" entry, which is never echoed).
SUBPROTOCOL = "netrun-ws"


def answered_subprotocol(request: WebSocket) -> str | None:
    """``SUBPROTOCOL`` when the client offered it, else None: the server answers only this
    non-secret name, never an offered ``bearer.<token>`` entry."""
    return SUBPROTOCOL if SUBPROTOCOL in request.scope.get("subprotocols", ()) else None


@dataclass(frozen=True, slots=True)
class Handshake:
    """The upgrade request of one connection.

    - ``path``: the request path (``/ws``);
    - ``query_params``: the query string, a read-only mapping (``.getlist(name)`` for repeats);
    - ``headers``: the request headers, a read-only case-insensitive mapping. They include
      credentials (``authorization``, ``cookie``): never log them whole;
    - ``client_host`` / ``client_port``: the peer address as the server saw it (behind a proxy,
      the proxy's, unless uvicorn's ``--proxy-headers`` applies ``X-Forwarded-For``); None when
      the server does not say;
    - ``subprotocol``: the subprotocol the server answered (``"netrun-ws"``) or None. The
      offered list is not kept: it may carry a ``bearer.<token>`` entry.
    """

    path: str
    query_params: QueryParams
    headers: Headers
    client_host: str | None
    client_port: int | None
    subprotocol: str | None

    @classmethod
    def of(cls, request: WebSocket) -> Handshake:
        """The handshake of ``request`` (a Starlette ``WebSocket``, as the ``handshake`` and
        ``authenticate`` hooks receive it)."""
        client = request.client
        return cls(
            path=request.url.path,
            query_params=request.query_params,
            headers=request.headers,
            client_host=client.host if client else None,
            client_port=client.port if client else None,
            subprotocol=answered_subprotocol(request),
        )
