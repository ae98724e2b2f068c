"""The HTTP API: ``POST <api_prefix>/publish`` lets a backend push a message to a user, a room or
everyone; ``POST <api_prefix>/revoke`` closes every connection of a user (logout, revocation).

Served only when ``server.api_key`` is set; callers send ``Authorization: Bearer <api_key>``.
Body: ``{"user": ID, "data": {...}}``, ``{"room": NAME, "data": {...}}`` or
``{"broadcast": true, "data": {...}, "exclude_users": [...]}``. ``data`` is sent to the clients as
is (a JSON object; give it a ``type``). The answer says how many connections on this node were
reached and to how many other nodes the message was sent: ``{"local": 3, "remote_nodes": 2}``.
401 without the right key, 413 for a body over ``limits.max_message_bytes``, 422 with details for a
bad body (also for a room or user ``data`` holding the reserved key ``pos``, for ``data``
holding ``NaN``/``Infinity`` or a number too large for a float: what
clients get is strict JSON).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from netrun_ws.protocol import _field_errors
from netrun_ws.store import Envelope
from netrun_ws.wire import encode_message

if TYPE_CHECKING:
    from netrun_ws.host import Host

_Body = TypeVar("_Body", bound=BaseModel)


class PublishRequest(BaseModel):
    """Body of ``POST <api_prefix>/publish``: exactly one of ``user``, ``room``, ``broadcast``."""

    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(None, min_length=1, max_length=128)
    room: str | None = Field(None, min_length=1, max_length=128)
    broadcast: bool = False
    exclude_users: list[str] = Field(default_factory=list, max_length=1000)
    data: dict[str, Any]

    @model_validator(mode="after")
    def _one_target(self) -> PublishRequest:
        targets = [self.user is not None, self.room is not None, self.broadcast]
        if sum(targets) != 1:
            raise ValueError("give exactly one of 'user', 'room' or 'broadcast': true")
        if self.exclude_users and not self.broadcast:
            raise ValueError("'exclude_users' only applies to 'broadcast'")
        if "pos" in self.data and not self.broadcast:
            raise ValueError("'data' may not hold 'pos': the server writes the position there")
        return self

    def envelope(self) -> Envelope:
        payload = encode_message(self.data)
        if self.user is not None:
            return Envelope("user", self.user, payload)
        if self.room is not None:
            return Envelope("room", self.room, payload)
        return Envelope("broadcast", None, payload, frozenset(self.exclude_users))


class RevokeRequest(BaseModel):
    """Body of ``POST <api_prefix>/revoke``: ``{"user": ID, "reason": "logged out"}``."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=128)
    reason: str = Field("revoked", max_length=120)


#: The 422 detail for ``data`` that has no strict JSON form.
_NOT_STRICT_JSON = {
    "loc": ["data"],
    "msg": "NaN, Infinity and numbers too large for a float are not JSON",
    "type": "json_invalid",
}


def _invalid(details: list[Any]) -> JSONResponse:
    return JSONResponse({"error": "invalid body", "details": details}, status_code=422)


def publish_routes(host: Host) -> list[Route]:
    """The API routes for ``host``; empty when no ``server.api_key`` is configured."""
    server = host.config.server
    if server.api_key is None:
        return []
    expected = f"Bearer {server.api_key.get_secret_value()}".encode()
    max_body = host.config.limits.max_message_bytes

    async def read(request: Request, model: type[_Body]) -> _Body | JSONResponse:
        """The validated body, or the 401/413/422 answer."""
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return JSONResponse(
                {"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        body = await request.body()
        if len(body) > max_body:
            return JSONResponse({"error": f"body over {max_body} bytes"}, status_code=413)
        try:
            return model.model_validate_json(body)
        except ValidationError as error:
            # No input echo: the body may carry anything (secrets, a 20,000-character key).
            return _invalid(_field_errors(error, None))

    async def publish(request: Request) -> JSONResponse:
        body = await read(request, PublishRequest)
        if isinstance(body, JSONResponse):
            return body
        try:
            envelope = body.envelope()
        except TypeError:  # NaN/Infinity in data (JSON parsers here accept them, clients do not)
            return _invalid([_NOT_STRICT_JSON])
        result = await host.publish(envelope)
        return JSONResponse({"local": result.local, "remote_nodes": result.remote_nodes})

    async def revoke(request: Request) -> JSONResponse:
        body = await read(request, RevokeRequest)
        if isinstance(body, JSONResponse):
            return body
        result = await host.revoke_user(body.user, body.reason)
        return JSONResponse({"local": result.local, "remote_nodes": result.remote_nodes})

    prefix = server.api_prefix.rstrip("/")
    return [
        Route(f"{prefix}/publish", publish, methods=["POST"]),
        Route(f"{prefix}/revoke", revoke, methods=["POST"]),
    ]
