"""JWT authentication for WebSocket connections (netrun-websocket's ``JWTAuthService``, on PyJWT).

Decisions a caller must know:

* The accepted algorithm list given to ``jwt.decode`` is explicit (``algorithms`` or just
  ``[algorithm]``) and can never contain ``none``.
* One key family per service: HS* uses ``secret_key`` as the shared secret for signing and
  verifying; RS*/PS*/ES*/EdDSA sign with ``secret_key`` (a PEM private key) and verify with
  ``public_key`` (a PEM public key; derived from the private key when omitted). Mixing families
  (e.g. ``algorithms=["HS256", "RS256"]``) is refused, which closes the classic RS/HS
  key-confusion hole. ``secret_key=None`` (or ``""``) with a ``public_key`` gives a verify-only
  service, whose ``generate_token`` raises RuntimeError.
* ``generate_token`` sets ``user_id``, ``sub``, ``iat`` and ``exp`` itself (plus ``aud``/``iss``
  when configured); ``additional_claims`` naming any of those raises ValueError rather than
  silently overriding identity or lifetime.
* ``validate_token`` never raises: any bad token gives None. ``validate_token_or_raise`` raises
  ``TokenValidationError`` whose ``reason`` tells expired from invalid.
* Token text never appears in exception messages or logs.
* Hostile tokens are refused cheaply before PyJWT parses them (``TokenPolicy.header``): longer
  than ``max_token_length`` (8192), not three base64url segments, a header segment over
  2048 characters or nested deeper than 4, or an ``alg`` outside the allowlist.
* ``exp`` is always required; ``required_claims`` adds more (e.g. ``["exp", "nbf"]``).
* PyJWT warns (``InsecureKeyLengthWarning``) when an HMAC secret is shorter than the hash size.
"""

from __future__ import annotations

import binascii
import json
import logging
import math
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from netrun_ws.extras import require_extra

try:
    import jwt
    from jwt import algorithms as jwt_algorithms

    from netrun_ws.jwt import jws_segments
    from netrun_ws.jwt.hmac_keys import CheckedHMACKeys
except ImportError:  # the [auth] extra is missing; JWTAuthService says so when it is built
    JWT_AVAILABLE = False
else:
    JWT_AVAILABLE = True
    #: ``jwt.decode`` with PyJWT's segment check done in C (netrun_ws/jwt/jws_segments.py).
    _decode = jws_segments.decoder().decode

__all__ = [
    "JWT_AVAILABLE",
    "MAX_TOKEN_LENGTH",
    "JWTAuthService",
    "TokenPolicy",
    "TokenRejection",
    "TokenValidationError",
    "check_required_claims",
]

logger = logging.getLogger(__name__)

TokenRejection = Literal[
    "expired",
    "invalid_signature",
    "invalid_token",
    "missing_claim",
    "invalid_audience",
    "invalid_issuer",
]
TOKEN_REJECTIONS: frozenset[str] = frozenset(get_args(TokenRejection))

#: RFC 7519 NumericDate claims: a JSON number or the token is refused. PyJWT would take the
#: string "1764100000" too, and a connection would get no expiry timer.
_TIME_CLAIMS = ("exp", "nbf", "iat")
#: Ints strictly within this bound convert to a finite float (math.isfinite takes them).
_FLOAT_SAFE = 2**1023

#: Claims that ``generate_token`` owns; ``additional_claims`` may not set them.
RESERVED_CLAIMS: frozenset[str] = frozenset({"user_id", "sub", "iat", "exp", "aud", "iss"})

_KeyFamily = Literal["hmac", "rsa", "ec", "okp"]

#: Longest token accepted (characters). Real JWTs are well under 2 KB; this bounds the work a
#: hostile client can cause before any cryptography runs.
MAX_TOKEN_LENGTH = 8192
# A JOSE header is a small flat object; these bounds reject abuse before json.loads sees it.
_MAX_HEADER_SEGMENT = 2048
_MAX_HEADER_DEPTH = 4
#: Decodes a header whole in one call; json.loads adds three Python frames and two whitespace
#: scans (what it alone accepts or refuses still goes to it: _decode_header_segment).
_HEADER_DECODER = json.JSONDecoder()
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# bytes.translate is a table lookup in C; str.translate with a dict table looks up every
# character in the dict, about 1,000 instructions each (a 36-character header: 37,000).
_URL_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


class TokenValidationError(ValueError):
    """A token was refused. ``reason`` is one of ``TokenRejection``; the token is never included.

    * ``expired``: authentic, but ``exp`` (plus leeway) has passed - ask the client to refresh.
    * ``invalid_signature``: well-formed, but the signature does not verify (tampered/wrong key).
    * ``invalid_token``: malformed, not a string, disallowed algorithm (incl. ``none``), not yet
      valid (``nbf``/``iat`` in the future), or a claim of the wrong type (``exp``/``nbf``/``iat``
      anything but a finite JSON number).
    * ``missing_claim``: no ``exp``, no user id (``user_id`` or ``sub``), or a required
      ``aud``/``iss`` absent.
    * ``invalid_audience`` / ``invalid_issuer``: ``aud`` / ``iss`` do not match the service.
    """

    def __init__(self, reason: TokenRejection) -> None:
        if reason not in TOKEN_REJECTIONS:
            raise ValueError(f"unknown token rejection reason {reason!r}")
        super().__init__(f"token rejected: {reason}")
        self.reason: TokenRejection = reason


def _key_family(algorithm: str) -> _KeyFamily:
    if algorithm.startswith("HS"):
        return "hmac"
    if algorithm.startswith(("RS", "PS")):
        return "rsa"
    if algorithm.startswith("ES"):
        return "ec"
    return "okp"


def _supported_algorithms() -> set[str]:
    # Depends on whether ``cryptography`` is installed (RS/ES/PS/EdDSA need it).
    return {name for name in jwt_algorithms.get_default_algorithms() if name.lower() != "none"}


def _check_algorithm(name: object, argument: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{argument} must be a non-empty algorithm name, got {name!r}")
    if name.lower() == "none":
        raise ValueError(f"{argument}: the 'none' algorithm is refused (unsigned tokens)")
    supported = _supported_algorithms()
    if name not in supported:
        raise ValueError(
            f"{argument}: unsupported algorithm {name!r}; supported: {', '.join(sorted(supported))}"
        )
    return name


def _finite_seconds(value: object, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{argument} must be a finite number of seconds, got {value!r}")
    return float(value)


def _check_seconds(value: object, argument: str, *, allow_zero: bool = False) -> float:
    seconds = _finite_seconds(value, argument)
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{argument} must be {bound}, got {value!r}")
    return seconds


def _check_key_material(value: object, argument: str) -> str | bytes:
    if value is None or value in ("", b""):
        raise ValueError(f"{argument} must not be empty")
    if not isinstance(value, str | bytes):
        raise ValueError(f"{argument} must be a str or bytes, got {type(value).__name__}")
    return value


def _nesting_exceeds(text: str, limit: int) -> bool:
    """True when JSON ``text`` nests arrays/objects deeper than ``limit`` (strings skipped)."""
    if text.count("{") + text.count("[") <= limit:
        return False  # too few brackets to nest that deep (the usual, flat header)
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _decode_header_segment(segment: str) -> dict[str, Any]:
    if len(segment) > _MAX_HEADER_SEGMENT:
        raise TokenValidationError("invalid_token")
    try:
        # base64.urlsafe_b64decode without its three Python frames: the segment is already
        # known to be base64url characters only (_COMPACT_JWS), so ASCII.
        standard = segment.encode("ascii").translate(_URL_TO_STANDARD) + b"=" * (-len(segment) % 4)
        text = binascii.a2b_base64(standard).decode("utf-8")
    except (binascii.Error, ValueError):
        raise TokenValidationError("invalid_token") from None
    # _nesting_exceeds's own first test, inline: a flat header (all of them) costs no call.
    if text.count("{") + text.count("[") > _MAX_HEADER_DEPTH and _nesting_exceeds(
        text, _MAX_HEADER_DEPTH
    ):
        raise TokenValidationError("invalid_token")
    try:
        header, end = _HEADER_DECODER.raw_decode(text)
    except ValueError:
        end = -1
    if end != len(text):  # not one JSON value from the first character to the last
        try:
            header = json.loads(text)  # accepts or refuses it as it always did
        except ValueError:
            raise TokenValidationError("invalid_token") from None
    if not isinstance(header, dict):
        raise TokenValidationError("invalid_token")
    return header


def check_required_claims(claims: object) -> tuple[str, ...]:
    """``claims`` as a tuple of claim names that always includes ``exp`` (ValueError if bad)."""
    if isinstance(claims, str) or not isinstance(claims, Sequence):
        raise ValueError(f"required_claims must be a list of claim names, got {claims!r}")
    names = list(claims)
    if not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"required_claims must be non-empty claim names, got {names!r}")
    return tuple(dict.fromkeys(["exp", *names]))


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """How a token is verified, whatever key source supplies the key.

    ``algorithms`` is the allowlist (never ``none``); ``audience``/``issuer`` are required and
    matched when set; ``leeway`` is the clock-skew allowance in seconds; every name in
    ``required_claims`` must be present (``exp`` always is: use ``check_required_claims``).
    """

    algorithms: tuple[str, ...]
    audience: str | tuple[str, ...] | None = None
    issuer: str | None = None
    leeway: float = 0.0
    required_claims: tuple[str, ...] = ("exp",)
    max_length: int = MAX_TOKEN_LENGTH
    # ``jwt.decode`` with this policy's options and arguments made once: PyJWT merges options
    # given per call into its defaults on every decode.
    _decode: Callable[..., dict[str, Any]] = field(init=False, repr=False, compare=False)
    _arguments: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not JWT_AVAILABLE:
            return  # JWTAuthService and the jwt plugin refuse to start without PyJWT
        decoder = jws_segments.decoder({"require": list(self.required_claims)})
        audience = list(self.audience) if isinstance(self.audience, tuple) else self.audience
        arguments = {
            "algorithms": list(self.algorithms),
            "audience": audience,
            "issuer": self.issuer,
            "leeway": self.leeway,
        }
        object.__setattr__(self, "_decode", decoder.decode)
        object.__setattr__(self, "_arguments", arguments)

    def header(self, token: object) -> dict[str, Any]:
        """The token's unverified JOSE header, after the cheap checks; else TokenValidationError.

        Refuses non-strings, empty or oversize tokens, anything but three base64url segments, a
        header that is huge, deeply nested or not an object, a non-string ``kid`` and an ``alg``
        outside ``algorithms`` - all before PyJWT parses anything.
        """
        if isinstance(token, bytes):
            try:
                token = token.decode("ascii")
            except UnicodeDecodeError:
                raise TokenValidationError("invalid_token") from None
        if not isinstance(token, str) or not token or len(token) > self.max_length:
            raise TokenValidationError("invalid_token")
        if _COMPACT_JWS.fullmatch(token) is None:
            raise TokenValidationError("invalid_token")
        header = _decode_header_segment(token.partition(".")[0])
        if header.get("alg") not in self.algorithms:
            raise TokenValidationError("invalid_token")
        if not isinstance(header.get("kid", ""), str):
            raise TokenValidationError("invalid_token")
        return header

    def claims(self, token: object, key: Any) -> dict[str, Any]:
        """The verified claims of ``token`` under ``key``, or TokenValidationError saying why not.

        The claims must also name a user: a non-empty string ``user_id`` or ``sub``.
        """
        header = self.header(token)
        assert isinstance(token, str | bytes)
        if isinstance(key, CheckedHMACKeys):
            key = key.for_algorithm(header["alg"])
            if key is None:  # an allowlisted alg that is not HS*: this key cannot verify it
                raise TokenValidationError("invalid_token")
        try:
            payload = self._decode(token, key, **self._arguments)
        except jwt.ExpiredSignatureError:
            raise TokenValidationError(self._expired_or_invalid(token)) from None
        except jwt.InvalidSignatureError:
            raise TokenValidationError("invalid_signature") from None
        except jwt.MissingRequiredClaimError:
            raise TokenValidationError("missing_claim") from None
        except jwt.InvalidAudienceError:
            raise TokenValidationError("invalid_audience") from None
        except jwt.InvalidIssuerError:
            raise TokenValidationError("invalid_issuer") from None
        except jwt.InvalidTokenError:
            raise TokenValidationError("invalid_token") from None
        except Exception as exc:
            # Hostile input must never escape as a traceback; log the type only, not the token.
            logger.debug("unexpected %s while decoding a token", type(exc).__name__)
            raise TokenValidationError("invalid_token") from None
        if not _numeric_dates(payload):
            raise TokenValidationError("invalid_token")
        user = payload.get("user_id", payload.get("sub"))
        if user is None:
            raise TokenValidationError("missing_claim")
        if not isinstance(user, str) or not user:
            raise TokenValidationError("invalid_token")
        return _kept(payload)

    @staticmethod
    def _expired_or_invalid(token: str | bytes) -> TokenRejection:
        """PyJWT calls ``exp: true`` or ``"1"`` expired (it takes ``int()`` of it); such a token
        is invalid, not one to refresh. Its signature has verified: reading it again is safe."""
        payload = _decode(token, options={"verify_signature": False})
        return "expired" if _numeric_dates(payload) else "invalid_token"


def _kept(payload: dict[str, Any]) -> dict[str, Any]:
    """The claims as a connection keeps them for its lifetime: each claim's name one string per
    process (interned, as "exp" or "sub" recur in every token), and ``sub`` the same object as an
    equal ``user_id``. An equal dict; about 270 bytes less per connection."""
    kept = {sys.intern(name): value for name, value in payload.items()}
    user = kept.get("user_id")
    if user is not None and user == kept.get("sub"):
        kept["sub"] = user
    return kept


def _numeric_dates(payload: Mapping[str, Any]) -> bool:
    # A loop, not all() over a generator, and a plain int (what tokens carry) of a size a float
    # holds passed without a call: about 5,000 instructions less per token.
    for name in _TIME_CLAIMS:
        if name in payload:
            value = payload[name]
            if type(value) is int and -_FLOAT_SAFE < value < _FLOAT_SAFE:
                continue
            if not _is_numeric_date(value):
                return False
    return True


def _is_numeric_date(value: object) -> bool:
    """A finite JSON number (RFC 7519 NumericDate): not a string, bool, null, NaN or infinity."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class JWTAuthService:
    """Issue and verify JWTs carrying ``user_id`` (and the standard ``sub``, ``iat``, ``exp``).

    ``secret_key``: the HMAC secret for HS*, or the PEM private key for RS*/PS*/ES*/EdDSA (None
    or empty only with ``public_key``, for a verify-only service). ``algorithm`` signs new tokens;
    ``algorithms`` (default ``[algorithm]``) are accepted on verification and must share the
    key family of ``algorithm``. ``audience``/``issuer``, when set, are written into new tokens
    and required on verification. ``leeway`` is the clock-skew allowance in seconds.
    ``required_claims`` must be present in verified tokens (``exp`` always is);
    ``max_token_length`` bounds the token size accepted for verification.
    """

    def __init__(
        self,
        secret_key: str | bytes | None,
        algorithm: str = "HS256",
        token_expiry_seconds: float = 7200,
        *,
        audience: str | Sequence[str] | None = None,
        issuer: str | None = None,
        leeway: float = 0.0,
        algorithms: Sequence[str] | None = None,
        public_key: str | bytes | None = None,
        required_claims: Sequence[str] = ("exp",),
        max_token_length: int = MAX_TOKEN_LENGTH,
    ) -> None:
        if not JWT_AVAILABLE:
            require_extra("jwt", "auth", "JWTAuthService", distribution="PyJWT")
        self.algorithm = _check_algorithm(algorithm, "algorithm")
        self.token_expiry_seconds = _check_seconds(token_expiry_seconds, "token_expiry_seconds")
        self.leeway = _check_seconds(leeway, "leeway", allow_zero=True)
        self.algorithms = self._check_algorithms(algorithms)
        self.audience = self._check_audience(audience)
        if issuer is not None and (not isinstance(issuer, str) or not issuer):
            raise ValueError(f"issuer must be a non-empty string or None, got {issuer!r}")
        self.issuer = issuer
        self.required_claims = check_required_claims(required_claims)
        if isinstance(max_token_length, bool) or not isinstance(max_token_length, int):
            raise ValueError(f"max_token_length must be an int, got {max_token_length!r}")
        if max_token_length < 256:
            raise ValueError(f"max_token_length must be >= 256, got {max_token_length!r}")
        self.max_token_length = max_token_length
        self._signing_key, self._verify_key = self._prepare_keys(secret_key, public_key)
        self._policy: tuple[tuple[Any, ...], TokenPolicy] | None = None

    @property
    def policy(self) -> TokenPolicy:
        """The verification rules, from the service's current settings (made again only when
        they changed)."""
        audience = tuple(self.audience) if isinstance(self.audience, list) else self.audience
        settings = (
            tuple(self.algorithms),
            audience,
            self.issuer,
            self.leeway,
            self.required_claims,
            self.max_token_length,
        )
        made = self._policy
        if made is None or made[0] != settings:
            made = (settings, TokenPolicy(*settings))
            self._policy = made
        return made[1]

    # -- construction checks ------------------------------------------------------------------

    def _check_algorithms(self, algorithms: Sequence[str] | None) -> list[str]:
        if algorithms is None:
            return [self.algorithm]
        if isinstance(algorithms, str) or not isinstance(algorithms, Sequence):
            raise ValueError(f"algorithms must be a list of names, got {algorithms!r}")
        accepted = [_check_algorithm(name, "algorithms") for name in algorithms]
        if not accepted:
            raise ValueError("algorithms must not be empty")
        if self.algorithm not in accepted:
            raise ValueError(
                f"algorithms must include the signing algorithm {self.algorithm!r}, "
                f"got {accepted!r}"
            )
        family = _key_family(self.algorithm)
        mixed = [name for name in accepted if _key_family(name) != family]
        if mixed:
            raise ValueError(
                f"algorithms mixes key families: {mixed!r} cannot share a key with "
                f"{self.algorithm!r} (HS* secrets and RS*/ES* keys are never mixed)"
            )
        return accepted

    @staticmethod
    def _check_audience(audience: str | Sequence[str] | None) -> str | list[str] | None:
        if audience is None:
            return None
        if isinstance(audience, str):
            if not audience:
                raise ValueError("audience must not be empty")
            return audience
        values = list(audience)
        if not values or not all(isinstance(value, str) and value for value in values):
            raise ValueError(f"audience must be a non-empty string or list of them, got {values!r}")
        return values

    def _prepare_keys(
        self, secret_key: str | bytes | None, public_key: str | bytes | None
    ) -> tuple[Any, Any]:
        algorithm = jwt_algorithms.get_default_algorithms()[self.algorithm]
        if _key_family(self.algorithm) == "hmac":
            if public_key is not None:
                raise ValueError("public_key is only for RS*/PS*/ES*/EdDSA; HS* uses secret_key")
            secret = _check_key_material(secret_key, "secret_key")
            try:
                prepared = algorithm.prepare_key(secret)
            except jwt.InvalidKeyError as exc:
                raise ValueError(f"secret_key is not usable as an HMAC secret: {exc}") from None
            return prepared, CheckedHMACKeys(prepared)

        signing: Any = None
        if secret_key or public_key is None:  # no private key is fine only when verify-only
            pem = _check_key_material(secret_key, "secret_key")
            try:
                signing = algorithm.prepare_key(pem)
            except (jwt.InvalidKeyError, ValueError, TypeError):
                raise ValueError(
                    f"secret_key must be a PEM private key for {self.algorithm}"
                ) from None
            if not hasattr(signing, "sign"):
                raise ValueError(f"secret_key must be a PEM private key for {self.algorithm}")

        if public_key is None:
            return signing, signing.public_key()
        pem = _check_key_material(public_key, "public_key")
        try:
            verify = algorithm.prepare_key(pem)
        except (jwt.InvalidKeyError, ValueError, TypeError):
            raise ValueError(f"public_key must be a PEM public key for {self.algorithm}") from None
        if hasattr(verify, "sign"):
            raise ValueError("public_key must be a public key, not a private key")
        if signing is not None:
            self._check_key_pair(signing, verify)
        return signing, verify

    def _check_key_pair(self, signing: Any, verify: Any) -> None:
        # A mismatched pair would issue tokens the service itself rejects; fail at startup.
        probe = jwt.encode({"probe": True}, signing, algorithm=self.algorithm)
        try:
            jwt.decode(probe, verify, algorithms=[self.algorithm])
        except jwt.InvalidTokenError:
            raise ValueError("public_key does not match secret_key") from None

    # -- issuing ------------------------------------------------------------------------------

    def generate_token(
        self,
        user_id: str,
        additional_claims: Mapping[str, Any] | None = None,
        expiry_seconds: float | None = None,
    ) -> str:
        """Return a signed token for ``user_id`` valid for ``expiry_seconds`` (default: service's).

        ``expiry_seconds`` None or 0 means the service's default; a negative value gives a token
        that expired that many seconds ago (as netrun-websocket 1.0 did: tests use it to
        exercise expiry handling). Raises ValueError for an empty ``user_id``, an
        ``expiry_seconds`` that is not a finite number, or ``additional_claims`` that set a
        reserved claim or are not JSON-serializable; RuntimeError on a verify-only service.
        """
        if not isinstance(user_id, str) or not user_id:
            raise ValueError(f"user_id must be a non-empty string, got {user_id!r}")
        lifetime = (
            self.token_expiry_seconds
            if expiry_seconds is None or _finite_seconds(expiry_seconds, "expiry_seconds") == 0
            else float(expiry_seconds)
        )
        if self._signing_key is None:
            raise RuntimeError("this JWTAuthService is verify-only (no secret_key): cannot sign")
        payload: dict[str, Any] = {}
        if additional_claims is not None:
            if not isinstance(additional_claims, Mapping):
                raise ValueError("additional_claims must be a mapping of claim names to values")
            reserved = sorted(RESERVED_CLAIMS.intersection(additional_claims))
            if reserved:
                raise ValueError(f"additional_claims may not set reserved claims: {reserved}")
            payload.update(additional_claims)
        issued_at = int(time.time())
        # JWT times are whole seconds: round the lifetime up, so a positive lifetime never gives
        # an already-expired token (a negative one asks for exactly that).
        expires = issued_at + math.ceil(lifetime)
        payload.update(user_id=user_id, sub=user_id, iat=issued_at, exp=expires)
        if self.audience is not None:
            payload["aud"] = self.audience
        if self.issuer is not None:
            payload["iss"] = self.issuer
        try:
            return jwt.encode(payload, self._signing_key, algorithm=self.algorithm)
        except TypeError:
            raise ValueError("additional_claims must be JSON-serializable") from None

    # -- verifying ----------------------------------------------------------------------------

    def validate_token_or_raise(self, token: str | bytes | None) -> dict[str, Any]:
        """Return the verified claims, or raise ``TokenValidationError`` saying why not."""
        return self.policy.claims(token, self._verify_key)

    def validate_token(self, token: str | bytes | None) -> dict[str, Any] | None:
        """Return the verified claims, or None for any invalid, expired or tampered token."""
        try:
            return self.validate_token_or_raise(token)
        except TokenValidationError as exc:
            logger.debug("token rejected: %s", exc.reason)
            return None

    def get_user_id(self, token: str | bytes | None) -> str | None:
        """Return the verified token's ``user_id`` (or ``sub``), or None if it is not valid."""
        payload = self.validate_token(token)
        if payload is None:
            return None
        user = payload.get("user_id", payload.get("sub"))
        return user if isinstance(user, str) else None

    def is_token_expired(self, token: str | bytes | None) -> bool:
        """Return False only for a token that verifies and has not expired; True otherwise.

        A tampered, garbage or otherwise invalid token counts as expired (True): the answer
        is "this token is no longer usable", so a caller gating on ``not is_token_expired``
        can never accept a forged token.
        """
        return self.validate_token(token) is None
