"""Every hook netrun-ws offers plugins: the one public contract between the host and its plugins.

A plugin is a module (or object) whose functions are marked with :data:`hookimpl` and named after a
spec below. Implementations may be ``async def`` or plain functions; the host awaits what needs
awaiting, and each implementation may accept any subset of the spec's arguments.

docs/hooks.md documents each hook; ``tests/test_hook_docs.py`` fails if one is missing there, and
``tests/test_hooks_fire.py`` fails if one is never fired by a test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pydantic import BaseModel
    from starlette.routing import BaseRoute
    from starlette.websockets import WebSocket

    from netrun_ws.connection import Connection
    from netrun_ws.handshake import Handshake
    from netrun_ws.host import Host
    from netrun_ws.identity import Identity, Rejection
    from netrun_ws.protocol import ProtocolError
    from netrun_ws.redact import Redactions
    from netrun_ws.store import DeliveryGap, Store

__all__ = ["PROJECT_NAME", "all_hook_names", "hookimpl", "hookspec"]

PROJECT_NAME = "netrun_ws"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# -------------------------------------------------------------------------
# Setup and teardown
# -------------------------------------------------------------------------


@hookspec
def add_hookspecs(plugin_manager: pluggy.PluginManager) -> None:
    """Add hookspecs of your own (``plugin_manager.add_hookspecs(module)``) for other plugins.

    Called once, synchronously, right after every configured plugin is registered and before the
    host checks that every implemented hook exists.
    """


@hookspec
def configure(host: Host, options: BaseModel | None) -> None:
    """Read your options and set up state. Synchronous; async work belongs in :func:`startup`.

    ``options`` is the implementing plugin's OWN validated options model (its module-level
    ``Options`` class filled from its config slot), or None when the plugin declares no ``Options``.
    Raising stops start-up with one line naming the plugin.
    """


@hookspec
def register_message_types(host: Host) -> list[type[BaseModel]] | None:
    """Return pydantic models to add to the protocol (each with a ``type: Literal[...]`` field).

    Synchronous; called once at start-up after :func:`configure`.
    """


@hookspec
def register_routes(host: Host) -> list[BaseRoute] | None:
    """Return Starlette routes (``Route``, ``Mount``, ...) to add to the app. Synchronous."""


@hookspec
def register_redactions(host: Host) -> Redactions | None:
    """Return where your plugin reads credentials from a request (``Redactions``: query parameter
    names, subprotocol prefixes), so their values are masked in log lines like the defaults.

    Synchronous; called once when the app is built, after :func:`register_routes`.
    """


@hookspec(firstresult=True)
def provide_store(host: Host) -> Store | None:
    """Return the session store (sessions, presence, broker). First non-None result wins.

    Called once at start-up, before :func:`startup`; the ``store`` slot plugin implements it.
    """


@hookspec
def startup(host: Host) -> None:
    """The app is starting (ASGI lifespan startup), after the store has started.

    Raising stops start-up: the server does not become ready.
    """


@hookspec
def shutdown(host: Host) -> None:
    """The app is stopping (ASGI lifespan shutdown), after connections were closed.

    Every implementation runs even if another one raises (failures are logged with the plugin name).
    """


# -------------------------------------------------------------------------
# Per connection: handshake and authentication (before accept)
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def handshake(host: Host, request: WebSocket) -> Rejection | None:
    """Inspect the upgrade request before it is accepted; return a ``Rejection`` to refuse it.

    First non-None result wins; a rejected handshake gets HTTP 403 and no connection is made.
    """


@hookspec(firstresult=True)
def authenticate(host: Host, request: WebSocket) -> Identity | None:
    """Return the connecting client's ``Identity``, or None to let the next plugin try.

    First non-None result wins. Raise ``AuthenticationError`` to refuse the client: it is closed
    with 1008 and the error's public reason, or, raised with ``status=401`` (or 403), refused
    before accept with that HTTP status. If every implementation returns None the client is
    refused with 1008 ("authentication required").
    """


@hookspec
def on_auth_refused(host: Host, handshake: Handshake, reason: str, status: int) -> None:
    """Authentication refused a client (or it did not finish within the handshake timeout).

    ``status`` is the HTTP status (401, 403) when the refusal came before accept, or the close
    code (1008, or 1011 when an auth plugin failed) when the socket had been accepted to refuse
    it (the default, and first-message auth). ``reason`` is the public reason the client got.
    For metrics sinks; every implementation runs even if another one raises.
    """


@hookspec(firstresult=True)
def verify_token(host: Host, token: str) -> Identity | None:
    """Turn a bearer token sent INSIDE the connection into an ``Identity`` (or None).

    First non-None result wins. Used for first-message authentication
    (``{"type": "auth", "token": ...}`` when ``server.first_message_auth`` is on) and for
    ``{"type": "refresh", "token": ...}`` renewals. Raise ``AuthenticationError`` to refuse.
    """


# -------------------------------------------------------------------------
# Per connection: lifecycle
# -------------------------------------------------------------------------


@hookspec
def on_connect(host: Host, connection: Connection) -> None:
    """A client was authenticated and accepted; its welcome message has not been sent yet.

    Messages sent to the connection from here (and any broadcast reaching it meanwhile) are held
    and delivered right after the welcome, in order: the welcome is always the first message.
    """


@hookspec
def on_ready(host: Host, connection: Connection) -> None:
    """The welcome was sent (after :func:`on_connect` and :func:`welcome_payload`, and after a
    resumed session got its state and rooms back); frames from the client are read after this.

    The moment to greet a client or send it initial data, as socket.io's connection handler
    does. Raising closes the connection with 1011, like :func:`on_connect`.
    """


@hookspec
def welcome_payload(host: Host, connection: Connection) -> dict[str, Any] | None:
    """Return fields to merge into the server's first message (``{"type": "connect", ...}``).

    Called after :func:`on_connect`. Later plugins override keys of earlier ones; the host's own
    keys cannot be overridden: ``type``, ``connection_id``, ``user_id``, ``session_id``,
    ``resumed`` and, when the session was resumed, ``state`` and ``rooms``.
    """


@hookspec
def on_message_received(host: Host, connection: Connection, raw: str | bytes) -> None:
    """A frame arrived, before it is parsed. Observe only (metrics, liveness)."""


@hookspec
def on_message(host: Host, connection: Connection, message: BaseModel) -> Any:
    """A frame parsed and validated into a registered message model.

    Every non-None return value is sent back to the sender (a dict, a pydantic model, or a str of
    already-encoded JSON).
    """


@hookspec
def on_invalid_message(
    host: Host, connection: Connection, raw: str | bytes, error: ProtocolError
) -> None:
    """A frame could not be parsed or validated; ``error.code`` says why. The sender has been
    sent an ``{"type": "error", ...}`` reply already."""


@hookspec
def before_send(host: Host, connection: Connection, message: Any) -> Any:
    """Transform an outgoing message for one connection, or return ``DROP`` to not send it.

    Implementations run in order, each receiving the previous one's result (None means "unchanged").
    When any plugin implements this hook, broadcasts are encoded per recipient instead of once.
    """


@hookspec
def after_send(host: Host, connection: Connection, message: Any) -> None:
    """A message was queued for the connection (the socket write happens asynchronously)."""


@hookspec
def authorize_room(host: Host, connection: Connection, room: str) -> bool | None:
    """Return False to refuse a connection joining ``room``. Any False refuses."""


@hookspec
def on_room_join(host: Host, connection: Connection, room: str) -> None:
    """A connection joined a room."""


@hookspec
def on_room_leave(host: Host, connection: Connection, room: str) -> None:
    """A connection left a room (also called for each room when it disconnects)."""


@hookspec
def on_heartbeat_missed(host: Host, connection: Connection, missed: int) -> None:
    """A connection did not answer a heartbeat interval; ``missed`` counts consecutive misses."""


@hookspec
def on_stale(host: Host, connection: Connection) -> None:
    """A connection exceeded the heartbeat timeout; it is closed with 4100 after this hook."""


@hookspec
def on_delivery_gap(host: Host, gap: DeliveryGap) -> None:
    """Messages from other nodes may have been lost between ``gap.started_at`` and
    ``gap.ended_at`` (the store's subscription was down). Every local client is also sent
    ``{"type": "delivery_gap", "since", "until"}``."""


@hookspec
def on_user_revoked(host: Host, user_id: str, reason: str) -> None:
    """Every connection of ``user_id`` on this node is about to be closed with 1008 (logout,
    revocation) by ``host.revoke_user`` or ``POST <api_prefix>/revoke``; fires on every node."""


@hookspec
def on_error(host: Host, connection: Connection | None, error: BaseException) -> None:
    """A plugin or the host failed while handling a connection (or outside one, with None).

    Failures inside this hook are logged and never re-enter it.
    """


@hookspec
def on_disconnect(host: Host, connection: Connection, code: int, reason: str) -> None:
    """A connection ended, whatever the cause. Called exactly once per connection; every
    implementation runs even if another one raises."""


def all_hook_names() -> set[str]:
    """The name of every hook specified in this module."""
    return {
        name
        for name, value in globals().items()
        if callable(value) and hasattr(value, f"{PROJECT_NAME}_spec")
    }
