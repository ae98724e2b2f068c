"""The HTTP API: ``POST <api_prefix>/publish`` lets a backend push a message to a user, a room or
everyone; ``POST <api_prefix>/revoke`` closes every connection of a user or a token and refuses it
afterwards (logout, revocation; see netrun_ws/runtime/revocation.py).

Served only when ``server.api_key`` is set; callers send ``Authorization: Bearer <api_key>``.
Body: ``{"user": ID, "data": {...}}``, ``{"room": NAME, "data": {...}}`` or
``{"broadcast": true, "data": {...}, "exclude_users": [...]}``. ``data`` is sent to the clients as
is (a JSON object; give it a ``type``). The answer says how many connections on this node were
reached and to how many other nodes the message was sent: ``{"local": 3, "remote_nodes": 2}``.
401 without the right key, 413 for a body over ``limits.max_message_bytes`` (on the declared
Content-Length before reading, else as soon as the bytes read pass it), 422 with details for a
bad body (also for a room or user ``data`` holding the reserved key ``pos``, for ``data``
holding ``NaN``/``Infinity`` or a number too large for a float: what
clients get is strict JSON).
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from netrun_ws.identity import AuthenticationError
from netrun_ws.plugins.hooks import HookError
from netrun_ws.plugins.loading import describe_exception
from netrun_ws.protocol import _field_errors
from netrun_ws.runtime.revocation import token_id
from netrun_ws.store import Envelope
from netrun_ws.wire import encode_message

if TYPE_CHECKING:
    from netrun_ws.host import Host

_Body = TypeVar("_Body", bound=BaseModel)
logger = logging.getLogger("netrun_ws")


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
    """Body of ``POST <api_prefix>/revoke``: exactly one of ``user`` (every credential of the user
    issued until now), ``token`` (that token, verified by the auth plugin) or ``jti`` (the token
    with that id, until ``expires_at`` when given); ``reason`` is the public close reason."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    user: str | None = Field(None, min_length=1, max_length=128)
    token: str | None = Field(None, min_length=1, max_length=16384)
    jti: str | None = Field(None, min_length=1, max_length=256)
    expires_at: float | None = Field(None, gt=0)
    reason: str = Field("revoked", max_length=120)

    @model_validator(mode="after")
    def _one_subject(self) -> RevokeRequest:
        if sum(value is not None for value in (self.user, self.token, self.jti)) != 1:
            raise ValueError("give exactly one of 'user', 'token' or 'jti'")
        if self.expires_at is not None and self.jti is None:
            raise ValueError("'expires_at' only applies to 'jti' (a token gives its own exp)")
        return self


#: The 422 detail for ``data`` that has no strict JSON form.
_NOT_STRICT_JSON = {
    "loc": ["data"],
    "msg": "NaN, Infinity and numbers too large for a float are not JSON",
    "type": "json_invalid",
}


def _invalid(details: list[Any]) -> JSONResponse:
    return JSONResponse({"error": "invalid body", "details": details}, status_code=422)


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to exceed ``limit`` bytes: a declared
    Content-Length over the limit is refused before reading anything, and a chunked (or lying)
    body is read only up to the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            return None
    return bytes(received)


async def _token_target(host: Host, body: RevokeRequest) -> tuple[str, float | None] | JSONResponse:
    """The token id and expiry a revoke body names, or the 422 saying why it names none."""
    if body.jti is not None:
        return f"jti:{body.jti}", body.expires_at
    assert body.token is not None
    try:
        identity = await host.admission.identity(host.fire.verify_token(body.token), "verify_token")
    except AuthenticationError as error:
        return _invalid([{"loc": ["token"], "msg": error.reason, "type": "token_invalid"}])
    except (HookError, TypeError) as error:
        logger.error("revoke: verify_token failed: %s", error)
        identity = None
    named = token_id(identity) if identity is not None else None
    if named is None:
        msg = "no auth plugin verified this token into claims; revoke its user or its jti"
        return _invalid([{"loc": ["token"], "msg": msg, "type": "token_unverified"}])
    assert identity is not None
    return named, identity.expires_at


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
            # Connection: close: the body is never read, and an unknown caller's bytes are not
            # worth taking in.
            headers = {"WWW-Authenticate": "Bearer", "Connection": "close"}
            return JSONResponse({"error": "unauthorized"}, status_code=401, headers=headers)
        body = await _bounded_body(request, max_body)
        if body is None:
            # Connection: close, so the server stops reading what the client still sends.
            return JSONResponse(
                {"error": f"body over {max_body} bytes"},
                status_code=413,
                headers={"Connection": "close"},
            )
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
        try:
            if body.user is not None:
                result = await host.revoke_user(body.user, body.reason)
            else:
                target = await _token_target(host, body)
                if isinstance(target, JSONResponse):
                    return target
                result = await host.revoke_token(*target, reason=body.reason)
        except Exception as exc:  # the store failed: say so, the operator retries
            logger.error("revocation not recorded: %s", describe_exception(exc))
            return JSONResponse(
                {"error": "revocation not recorded: store unavailable"}, status_code=503
            )
        return JSONResponse({"local": result.local, "remote_nodes": result.remote_nodes})

    prefix = server.api_prefix.rstrip("/")
    return [
        Route(f"{prefix}/publish", publish, methods=["POST"]),
        Route(f"{prefix}/revoke", revoke, methods=["POST"]),
    ]
