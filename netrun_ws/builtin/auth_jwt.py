"""auth: jwt - clients present a JWT, verified with one key source (JWTAuthService, PyJWT).

Exactly one key source: ``secret`` (HS*), ``public_key_file`` (a PEM public key, RS*/PS*/ES*/
EdDSA) or ``jwks_url`` (a JWKS endpoint, RS*/PS*/ES*/EdDSA; see ``netrun_ws.jwt.jwks``).

Where the token is read, in this order (the first one present is the one verified):

1. ``Authorization: Bearer <token>``;
2. a WebSocket subprotocol ``<subprotocol_prefix><token>`` (default ``bearer.<token>``), for
   browsers, which cannot set headers: offer ``["netrun-ws", "bearer.<token>"]``; the host
   answers ``netrun-ws`` and never echoes the token;
3. the ``query_param`` query parameter, only when it is set (default off: URLs end up in proxy
   logs). Its name is then redacted from log lines too (``register_redactions``), as is the
   subprotocol prefix.

No token at all gives None (the host then waits for first-message auth, or refuses with
"authentication required"). A bad token is refused with the public reason "invalid token" or
"token expired" (accept, then close 1008; with ``refuse_with: http``, HTTP 401 before accept);
the token text never appears in a reason or a log line. ``verify_token``
applies the same checks to tokens sent inside the connection (first-message auth, refresh).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from starlette.websockets import WebSocket

from netrun_ws import hookimpl, redact
from netrun_ws.auth import (
    MAX_TOKEN_LENGTH,
    JWTAuthService,
    TokenPolicy,
    TokenValidationError,
    check_required_claims,
)
from netrun_ws.identity import AuthenticationError, Identity
from netrun_ws.jwt import JWKSKeys, JWKSVerifier, key_type_for

_PUBLIC_REASONS = {"expired": "token expired"}
# Algorithm name -> key family. "none" is deliberately absent: unsigned tokens are never accepted.
_FAMILIES = {
    **{f"HS{bits}": "HMAC secret" for bits in (256, 384, 512)},
    **{f"{kind}{bits}": "RSA key" for kind in ("RS", "PS") for bits in (256, 384, 512)},
    **{f"ES{bits}": "EC key" for bits in ("256", "256K", "384", "512")},
    "EdDSA": "EdDSA key",
}
_QUERY_PARAM_NAME = re.compile(r"[A-Za-z0-9_.~-]+")
# RFC 7230 token characters: what a Sec-WebSocket-Protocol entry may contain.
_SUBPROTOCOL_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    secret: SecretStr | None = Field(None, description="HS* shared secret (use ${VAR}).")
    public_key_file: Path | None = Field(
        None,
        description=(
            "PEM public key file for RS*/PS*/ES*/EdDSA; a relative path is relative to the "
            "config file's directory (for a config given as a dict, to the current directory)."
        ),
    )
    jwks_url: str | None = Field(
        None, description="JWKS endpoint (http/https) for RS*/PS*/ES*/EdDSA keys, by `kid`."
    )
    jwks_cache_seconds: float = Field(300.0, gt=0, description="How long fetched keys are used.")
    jwks_refetch_cooldown: float = Field(
        30.0, ge=0, description="Min seconds between JWKS fetches caused by an unknown `kid`."
    )
    jwks_timeout_seconds: float = Field(5.0, gt=0, description="JWKS HTTP request timeout.")
    algorithms: list[str] = Field(["HS256"], min_length=1, description="Accepted algorithms.")
    token_expiry_seconds: int = Field(7200, gt=0, description="Lifetime of tokens it issues.")
    audience: str | None = Field(None, description="Required `aud` claim.")
    issuer: str | None = Field(None, description="Required `iss` claim.")
    leeway: float = Field(0.0, ge=0, description="Clock skew tolerated on exp/iat, seconds.")
    required_claims: list[str] = Field(
        ["exp"], description="Claims every token must carry (`exp` is always required)."
    )
    max_token_bytes: int = Field(
        MAX_TOKEN_LENGTH, ge=256, le=65536, description="Longer tokens are refused unparsed."
    )
    query_param: str | None = Field(
        None, description="Query parameter carrying the token (null: tokens in URLs refused)."
    )
    subprotocol_prefix: str | None = Field(
        "bearer.", description="Subprotocol prefix carrying the token (null: off)."
    )
    refuse_with: Literal["close", "http"] = Field(
        "close",
        description=(
            "How a bad token presented at the handshake is refused: `close` accepts then closes "
            "with 1008 and the reason (browsers can read it), `http` answers HTTP 401 before "
            "accept. First-message and refresh tokens are always refused with 1008."
        ),
    )

    @field_validator("algorithms")
    @classmethod
    def _one_known_family(cls, algorithms: list[str]) -> list[str]:
        unknown = [name for name in algorithms if name not in _FAMILIES]
        if unknown:
            known = ", ".join(_FAMILIES)
            raise ValueError(f"unknown or refused algorithm(s) {unknown}; known: {known}")
        families = sorted({_FAMILIES[name] for name in algorithms})
        if len(families) > 1:
            # Mixing HS with RS/ES lets a public key be used as an HMAC secret.
            raise ValueError(f"algorithms mix key families ({', '.join(families)}); use one")
        return algorithms

    @field_validator("public_key_file")
    @classmethod
    def _readable(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None:
            return None
        path = path.expanduser()
        base_dir = (info.context or {}).get("base_dir")
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        _read_key_file(path)
        return path

    @field_validator("jwks_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url!r} is not an http(s) URL")
        return url

    @field_validator("required_claims")
    @classmethod
    def _exp_always(cls, claims: list[str]) -> list[str]:
        return list(check_required_claims(claims))

    @field_validator("query_param")
    @classmethod
    def _param_name(cls, name: str | None) -> str | None:
        if name is not None and not _QUERY_PARAM_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a plain query parameter name")
        return name

    @field_validator("subprotocol_prefix")
    @classmethod
    def _prefix(cls, prefix: str | None) -> str | None:
        if prefix is not None and not _SUBPROTOCOL_TOKEN.fullmatch(prefix):
            raise ValueError(f"{prefix!r} cannot start a subprotocol name (RFC 7230 token)")
        return prefix

    @model_validator(mode="after")
    def _one_key_source(self) -> Options:
        sources = [
            name
            for name, value in (
                ("secret", self.secret),
                ("public_key_file", self.public_key_file),
                ("jwks_url", self.jwks_url),
            )
            if value is not None
        ]
        if len(sources) != 1:
            given = f" (got {', '.join(sources)})" if sources else ""
            raise ValueError(f"set exactly one of `secret`, `public_key_file`, `jwks_url`{given}")
        hmac = _FAMILIES[self.algorithms[0]] == "HMAC secret"
        if self.secret is not None:
            if not self.secret.get_secret_value():
                raise ValueError("`secret` is empty (is its environment variable set?)")
            if not hmac:
                raise ValueError(f"`secret` is for HS* algorithms, not {self.algorithms}")
        elif hmac:
            raise ValueError(f"{self.algorithms} need `secret`; keys are for RS*/PS*/ES*/EdDSA")
        if self.public_key_file is not None:
            service_from(self)  # a file that is not a usable public key is a config error too
        return self


def _read_key_file(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        why = error.strerror if isinstance(error, OSError) and error.strerror else "not text"
        raise ValueError(f"public_key_file {str(path)!r} cannot be read: {why}") from None


def redactions(options: Options) -> redact.Redactions:
    """Where this plugin reads a token besides the Authorization header: ``query_param`` (when
    set) and ``subprotocol_prefix``. The plugin answers ``register_redactions`` with it."""
    return redact.Redactions(
        (options.query_param,) if options.query_param else (),
        (options.subprotocol_prefix,) if options.subprotocol_prefix else (),
    )


def redacted_params(options: Options) -> tuple[str, ...]:
    """Query parameter names redacted from log lines: the defaults plus ``query_param``."""
    return (redact.DEFAULTS | redactions(options)).query_params


def log_filters(options: Options) -> list[logging.Filter]:
    """The filters ``create_app`` installs for this plugin (with the defaults), on the loggers that
    print requests (``redact.LOGGERS``)."""
    return redact.log_filters(redactions(options))


def policy_from(options: Options) -> TokenPolicy:
    """The verification rules an Options describes (whatever the key source)."""
    return TokenPolicy(
        algorithms=tuple(options.algorithms),
        audience=options.audience,
        issuer=options.issuer,
        leeway=options.leeway,
        required_claims=tuple(options.required_claims),
        max_length=options.max_token_bytes,
    )


def service_from(options: Options) -> JWTAuthService:
    """The JWTAuthService for a secret or public key file (the CLI's `token` command uses it).

    Raises ValueError naming the option for an unusable key, and for ``jwks_url`` (its keys
    are fetched per token, and netrun-ws cannot issue tokens for them).
    """
    common: dict[str, Any] = {
        "algorithm": options.algorithms[0],
        "token_expiry_seconds": options.token_expiry_seconds,
        "audience": options.audience,
        "issuer": options.issuer,
        "leeway": options.leeway,
        "algorithms": options.algorithms,
        "required_claims": options.required_claims,
        "max_token_length": options.max_token_bytes,
    }
    if options.public_key_file is not None:
        pem = _read_key_file(options.public_key_file)
        try:
            return JWTAuthService("", public_key=pem, **common)
        except ValueError as error:
            raise ValueError(f"public_key_file {str(options.public_key_file)!r}: {error}") from None
    if options.secret is None:
        raise ValueError("jwks_url: keys come from the JWKS endpoint; netrun-ws cannot sign")
    return JWTAuthService(options.secret.get_secret_value(), **common)


class TokenVerifier(Protocol):
    async def claims(self, token: str) -> dict[str, Any]: ...


class _LocalKeyVerifier:
    def __init__(self, service: JWTAuthService) -> None:
        self.service = service

    async def claims(self, token: str) -> dict[str, Any]:
        return self.service.validate_token_or_raise(token)


def verifier_from(options: Options) -> _LocalKeyVerifier | JWKSVerifier:
    """The verifier for the configured key source."""
    if options.jwks_url is None:
        return _LocalKeyVerifier(service_from(options))
    keys = JWKSKeys(
        options.jwks_url,
        key_type=key_type_for(options.algorithms[0]),
        cache_seconds=options.jwks_cache_seconds,
        refetch_cooldown=options.jwks_refetch_cooldown,
        timeout=options.jwks_timeout_seconds,
    )
    return JWKSVerifier(policy_from(options), keys)


def token_from(
    request: WebSocket, query_param: str | None, subprotocol_prefix: str | None = "bearer."
) -> str | None:
    """The token a connecting client presents (header, subprotocol, query), or None."""
    scheme, _, credentials = _authorization(request).partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if subprotocol_prefix:
        for offered in request.scope.get("subprotocols", ()):
            if offered.startswith(subprotocol_prefix) and len(offered) > len(subprotocol_prefix):
                return str(offered[len(subprotocol_prefix) :])
    if query_param:
        return request.query_params.get(query_param) or None
    return None


def _authorization(request: WebSocket) -> str:
    """``request.headers.get("authorization", "")``, read from the scope's header list: Starlette's
    ``headers`` keeps a ``Headers`` and its own copy of that list on the socket for the
    connection's lifetime (about 100 bytes per connection), to read one field once."""
    fields = request.scope.get("headers")
    if type(fields) is not list and type(fields) is not tuple:  # Starlette reads any other
        return request.headers.get("authorization", "")
    for name, value in fields:  # ASGI's names are lowercase, as Starlette compares them
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return ""


class Plugin:
    def __init__(self) -> None:
        self.verifier: TokenVerifier | None = None
        self.query_param: str | None = None
        self.subprotocol_prefix: str | None = "bearer."
        self.redactions = redact.Redactions()
        self.refusal_status: int | None = None

    @hookimpl
    def configure(self, options: Options) -> None:
        self.refusal_status = 401 if options.refuse_with == "http" else None
        self.verifier = verifier_from(options)
        self.query_param = options.query_param
        self.subprotocol_prefix = options.subprotocol_prefix
        self.redactions = redactions(options)

    @hookimpl
    def register_redactions(self) -> redact.Redactions:
        return self.redactions

    @hookimpl
    async def startup(self) -> None:
        # Fetch JWKS keys before the first client; a failure is logged, retried on demand.
        if isinstance(self.verifier, JWKSVerifier):
            await self.verifier.keys.refresh()

    @hookimpl
    async def authenticate(self, request: WebSocket) -> Identity | None:
        token = token_from(request, self.query_param, self.subprotocol_prefix)
        return None if token is None else await self._identity(token, self.refusal_status)

    @hookimpl
    async def verify_token(self, token: str) -> Identity | None:
        return await self._identity(token, None)  # inside the connection: always 1008

    async def _identity(self, token: str, status: int | None) -> Identity:
        verifier = self.verifier
        if verifier is None:
            raise AuthenticationError("authentication unavailable")
        try:
            if type(verifier) is _LocalKeyVerifier:
                # A local key verifies without awaiting anything: its service called here, not
                # through the verifier's coroutine (about 2,000 instructions per connection).
                claims = verifier.service.validate_token_or_raise(token)
            else:
                claims = await verifier.claims(token)
        except TokenValidationError as error:
            reason = _PUBLIC_REASONS.get(error.reason, "invalid token")
            raise AuthenticationError(reason, status=status) from None
        user_id = claims.get("user_id") or claims.get("sub")
        if not isinstance(user_id, str) or not user_id:
            raise AuthenticationError("invalid token", status=status)
        username = claims.get("username")
        expires = claims.get("exp")
        # Positional (user_id, username, claims, expires_at): keywords cost a frozen dataclass's
        # __init__ about 2,000 instructions more per connection.
        return Identity(
            user_id,
            username if isinstance(username, str) else None,
            claims,
            float(expires) if isinstance(expires, int | float) else None,
        )
