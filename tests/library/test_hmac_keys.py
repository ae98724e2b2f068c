"""CheckedHMACKeys: PyJWT's HMAC key checks run once per secret, and verification is unchanged.

Every test runs with the checks built on PyJWT internals and with PyJWT's own (the fallback);
that the secret is then not checked again is in tests/upstream/test_pyjwt.py."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from netrun_ws.auth import JWTAuthService, TokenValidationError
from netrun_ws.jwt.hmac_keys import CheckedHMACKeys

SECRET = "a-checked-secret-long-enough-for-hs512-" + "x" * 40

pytestmark = pytest.mark.usefixtures("pyjwt_fence")


def _claims() -> dict[str, Any]:
    return {"sub": "u1", "exp": int(time.time()) + 60}


def _reason(service: JWTAuthService, token: str) -> str:
    with pytest.raises(TokenValidationError) as caught:
        service.validate_token_or_raise(token)
    return caught.value.reason


def test_every_hs_algorithm_verifies_and_the_allowlist_still_applies() -> None:
    only_256 = JWTAuthService(SECRET)
    for name in ("HS384", "HS512"):
        assert _reason(only_256, jwt.encode(_claims(), SECRET, algorithm=name)) == "invalid_token"
    both = JWTAuthService(SECRET, algorithms=["HS256", "HS384"])
    assert both.validate_token(jwt.encode(_claims(), SECRET, algorithm="HS384")) is not None
    assert both.validate_token(jwt.encode(_claims(), SECRET, algorithm="HS512")) is None


def test_a_wrong_secret_or_a_changed_signature_is_refused() -> None:
    service = JWTAuthService(SECRET)
    forged = jwt.encode(_claims(), SECRET + "-not", algorithm="HS256")
    assert _reason(service, forged) == "invalid_signature"
    good = jwt.encode(_claims(), SECRET, algorithm="HS256")
    head, payload, signature = good.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert _reason(service, f"{head}.{payload}.{flipped}") == "invalid_signature"


def test_a_secret_pyjwt_refuses_is_refused_when_the_keys_are_built() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(jwt.InvalidKeyError):
        CheckedHMACKeys(pem)
    with pytest.raises(jwt.InvalidKeyError):
        CheckedHMACKeys(b'{"kty": "oct", "k": "c2VjcmV0"}')


def test_another_key_given_to_a_checked_key_gets_pyjwt_full_checks() -> None:
    keys = CheckedHMACKeys(SECRET.encode())
    checked = keys.for_algorithm("HS256")
    assert checked is not None
    pem = b"-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"
    with pytest.raises(jwt.InvalidKeyError):
        checked.Algorithm.prepare_key(pem)
    assert keys.for_algorithm("RS256") is None
    assert keys.for_algorithm("none") is None
