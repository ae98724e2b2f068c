"""A test app plugin that admits only clients presenting ``TICKET``, as ``?ticket=`` or as a
``ticket.<TICKET>`` subprotocol, and says so (``register_redactions``) to keep it out of the logs.

Configured by dotted module path (``tests.security.ticket_plugin``) next to any auth plugin: it
shows that a plugin which is not the auth plugin gets its credentials masked the same way.
"""

from __future__ import annotations

from starlette.websockets import WebSocket

from netrun_ws import Rejection, hookimpl
from netrun_ws.redact import Redactions

TICKET = "tkt-7f3a9c2e5b1d"


@hookimpl
def register_redactions() -> Redactions:
    return Redactions(query_params=("ticket",), subprotocol_prefixes=("ticket.",))


@hookimpl
def handshake(request: WebSocket) -> Rejection | None:
    offered = request.scope.get("subprotocols", ())
    if request.query_params.get("ticket") == TICKET or f"ticket.{TICKET}" in offered:
        return None
    return Rejection("ticket required")
