"""auth: jwt - clients present a JWT signed with the configured key (JWTAuthService, PyJWT).

The token is read from ``Authorization: Bearer <token>``, else from the ``token`` query parameter
(``query_param``; set it to null to refuse tokens in URLs, which end up in proxy logs).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from starlette.websockets import WebSocket

from netrun_ws import hookimpl
from netrun_ws.auth import JWTAuthService, TokenValidationError
from netrun_ws.identity import AuthenticationError, Identity

_PUBLIC_REASONS = {"expired": "token expired"}
# Algorithm name -> key family. "none" is deliberately absent: unsigned tokens are never accepted.
_FAMILIES = {
    **{f"HS{bits}": "HMAC secret" for bits in (256, 384, 512)},
    **{f"{kind}{bits}": "RSA key" for kind in ("RS", "PS") for bits in (256, 384, 512)},
    **{f"ES{bits}": "EC key" for bits in ("256", "256K", "384", "512")},
    "EdDSA": "EdDSA key",
}


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: SecretStr | None = Field(None, description="HS* shared secret (use ${VAR}).")
    public_key_file: Path | None = Field(None, description="PEM public key for RS*/ES* tokens.")
    algorithms: list[str] = Field(["HS256"], min_length=1, description="Accepted algorithms.")
    token_expiry_seconds: int = Field(7200, gt=0, description="Lifetime of tokens it issues.")
    audience: str | None = Field(None, description="Required `aud` claim.")
    issuer: str | None = Field(None, description="Required `iss` claim.")
    leeway: float = Field(0.0, ge=0, description="Clock skew tolerated on exp/iat, seconds.")
    query_param: str | None = Field("token", description="Query parameter carrying the token.")

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

    @model_validator(mode="after")
    def _needs_a_key(self) -> Options:
        if self.secret is None and self.public_key_file is None:
            raise ValueError("set `secret` (HS*) or `public_key_file` (RS*/ES*)")
        if self.secret is not None and not self.secret.get_secret_value():
            raise ValueError("`secret` is empty (is its environment variable set?)")
        return self


def service_from(options: Options) -> JWTAuthService:
    """The JWTAuthService an Options describes (the CLI's `token` command uses it too)."""
    algorithm = options.algorithms[0]
    if options.public_key_file is not None:
        public_key = options.public_key_file.read_text()
        return JWTAuthService(
            "",
            algorithm=algorithm,
            token_expiry_seconds=options.token_expiry_seconds,
            audience=options.audience,
            issuer=options.issuer,
            leeway=options.leeway,
            algorithms=options.algorithms,
            public_key=public_key,
        )
    assert options.secret is not None
    return JWTAuthService(
        options.secret.get_secret_value(),
        algorithm=algorithm,
        token_expiry_seconds=options.token_expiry_seconds,
        audience=options.audience,
        issuer=options.issuer,
        leeway=options.leeway,
        algorithms=options.algorithms,
    )


def token_from(request: WebSocket, query_param: str | None) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if query_param:
        return request.query_params.get(query_param) or None
    return None


class Plugin:
    def __init__(self) -> None:
        self.service: JWTAuthService | None = None
        self.query_param: str | None = "token"

    @hookimpl
    def configure(self, options: Options) -> None:
        self.service = service_from(options)
        self.query_param = options.query_param

    @hookimpl
    def authenticate(self, request: WebSocket) -> Identity | None:
        token = token_from(request, self.query_param)
        if token is None or self.service is None:
            return None
        try:
            claims = self.service.validate_token_or_raise(token)
        except TokenValidationError as error:
            raise AuthenticationError(_PUBLIC_REASONS.get(error.reason, "invalid token")) from None
        user_id = claims.get("user_id") or claims.get("sub")
        if not isinstance(user_id, str) or not user_id:
            raise AuthenticationError("invalid token")
        username = claims.get("username")
        expires = claims.get("exp")
        return Identity(
            user_id=user_id,
            username=username if isinstance(username, str) else None,
            claims=claims,
            expires_at=float(expires) if isinstance(expires, (int, float)) else None,
        )
