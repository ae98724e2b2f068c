"""Shared pieces of the security tests: keys, hand-forged tokens, a JWKS server, outcomes.

Every test here talks to a real uvicorn server with real ``websockets`` clients.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import websockets
from cryptography.hazmat.primitives import serialization
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from websockets.asyncio.client import connect

from netrun_ws.builtin import auth_jwt
from tests.host.helpers import base_config

PUBLIC_REASONS = ("invalid token", "token expired")
# Loggers a server writes to; caplog's handler is attached to each (uvicorn's do not propagate).
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "netrun_ws")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: Any, payload: Any, signature: bytes = b"not-a-signature") -> str:
    """A compact JWS built by hand, so nothing checks what an attacker would not check."""
    head = header if isinstance(header, str) else b64(json.dumps(header).encode())
    body = b64(json.dumps(payload).encode())
    return f"{head}.{body}.{b64(signature)}"


def claims(user: str = "alice", lifetime: float = 600, **extra: Any) -> dict[str, Any]:
    """Claims a server accepts (``None`` values are dropped, to omit a claim)."""
    now = int(time.time())
    values: dict[str, Any] = {"sub": user, "iat": now, "exp": now + int(lifetime)}
    values.update(extra)
    return {key: value for key, value in values.items() if value is not None}


def sign(private_key: Any, algorithm: str, payload: dict[str, Any], kid: str | None = None) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload, private_key, algorithm=algorithm, headers=headers)


def public_pem(private_key: Any) -> bytes:
    return private_key.public_key().public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def jwk_of(private_key: Any, kid: str, alg: str | None = None) -> dict[str, Any]:
    """The public JWK of ``private_key`` as a JWKS endpoint would publish it."""
    algorithm = jwt.get_algorithm_by_name(alg or "RS256")
    jwk: dict[str, Any] = json.loads(algorithm.to_jwk(private_key.public_key()))
    jwk.update(kid=kid, use="sig")
    if alg is not None:
        jwk["alg"] = alg
    return jwk


def jwt_config(**auth: Any) -> dict[str, Any]:
    """A create_app config with ``auth: jwt`` and the given options."""
    return base_config(auth={"plugin": "jwt", **auth})


@dataclass
class JWKSEndpoint:
    """A tiny JWKS server's state: what it publishes and how often it was asked."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    requests: int = 0

    def app(self) -> Starlette:
        async def jwks(request: Request) -> Response:
            self.requests += 1
            if self.status != 200:
                return Response("unavailable", status_code=self.status)
            return JSONResponse({"keys": self.keys})

        return Starlette(routes=[Route("/jwks.json", jwks)])


@dataclass(frozen=True)
class Outcome:
    """How a connection attempt ended: the welcome it got, or the close code and reason."""

    welcome: dict[str, Any] | None
    code: int | None = None
    reason: str = ""
    subprotocol: str | None = None


async def attempt(url: str, timeout: float = 5.0, **connect_args: Any) -> Outcome:
    """Connect and read the first message; a refusal is returned, not raised."""
    return await asyncio.wait_for(_attempt(url, **connect_args), timeout)


async def _attempt(url: str, **connect_args: Any) -> Outcome:
    async with connect(url, **connect_args) as client:
        try:
            first = json.loads(await client.recv())
        except websockets.ConnectionClosed:
            return Outcome(None, client.close_code, client.close_reason or "")
        return Outcome(first, subprotocol=client.subprotocol)


# Serve with these so uvicorn logs everything (TRACE) and its loggers keep no handlers of
# their own: the test's handler sees every record.
VERBOSE_SERVER: dict[str, Any] = {"log_level": "trace", "log_config": None}


def server_logs(
    handler: logging.Handler, config: dict[str, Any]
) -> contextlib.AbstractContextManager[None]:
    """Attach ``handler`` (caplog's) at DEBUG to every server logger, with the jwt plugin's
    redaction filters installed as the app installs them at start; restore the loggers after."""
    options = {key: value for key, value in config["auth"].items() if key != "plugin"}
    filters = auth_jwt.log_filters(auth_jwt.Options.model_validate(options))
    return captured_logs(handler, SERVER_LOGGERS, filters)


@contextlib.contextmanager
def captured_logs(
    handler: logging.Handler,
    names: Iterable[str],
    filters: Iterable[logging.Filter] = (),
    level: int = logging.DEBUG,
) -> Iterator[None]:
    """Attach ``handler`` at ``level``, and ``filters``, to the loggers ``names``; restore after."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    filters = list(filters)
    for logger in loggers:
        logger.setLevel(level)
        logger.addHandler(handler)
        for log_filter in filters:
            logger.addFilter(log_filter)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            for log_filter in filters:
                logger.removeFilter(log_filter)
            logger.setLevel(level)


def leaks(records: list[logging.LogRecord], *secrets: str) -> list[str]:
    """Server log lines (with any traceback) that contain one of ``secrets``.

    The test's own ``websockets.client`` records are left out: the client holds its token.
    """
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts = (
        formatter.format(record)
        for record in records
        if not record.name.startswith("websockets.client")
    )
    return [text for text in texts if any(secret in text for secret in secrets)]


def token_parts(token: str) -> list[str]:
    """The token and parts unique to it: payload, signature, and its tail (which a truncated
    log line would still show). Strings under 8 characters (``..``, ``a.b``) are left out:
    they occur in ordinary log lines and are no secret."""
    parts = [token, *token.split(".")[1:]]
    if len(token) >= 40:
        parts.append(token[-12:])
    return [part for part in parts if len(part) >= 8]
