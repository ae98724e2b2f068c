"""JWTAuthService on real PyJWT: issuing, verifying, every rejection reason, key handling."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import netrun_ws.auth as auth_module
from netrun_ws.auth import JWTAuthService, TokenValidationError
from netrun_ws.extras import require_extra

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
OTHER_SECRET = "another-secret-also-long-enough-for-hs256!!"


def _pem_private(key: Any) -> bytes:
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_public(key: Any) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def service() -> JWTAuthService:
    return JWTAuthService(SECRET)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"user_id": "u1", "sub": "u1", "iat": now, "exp": now + 600}
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


# -- issuing -------------------------------------------------------------------------------------


def test_defaults_match_netrun_websocket(service: JWTAuthService) -> None:
    assert service.algorithm == "HS256"
    assert service.token_expiry_seconds == 7200
    assert service.algorithms == ["HS256"]
    assert service.leeway == 0.0
    assert service.audience is None and service.issuer is None


def test_generated_token_carries_standard_claims(service: JWTAuthService) -> None:
    before = int(time.time())
    token = service.generate_token("user-42", {"role": "admin", "tenant": 7})
    after = int(time.time())
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["user_id"] == "user-42"
    assert claims["sub"] == "user-42"
    assert before <= claims["iat"] <= after
    assert claims["exp"] == claims["iat"] + 7200
    assert claims["role"] == "admin" and claims["tenant"] == 7
    assert "aud" not in claims and "iss" not in claims
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_expiry_seconds_overrides_service_default(service: JWTAuthService) -> None:
    claims = jwt.decode(service.generate_token("u", expiry_seconds=60), SECRET, ["HS256"])
    assert claims["exp"] - claims["iat"] == 60


def test_token_expiry_seconds_is_the_default_lifetime() -> None:
    service = JWTAuthService(SECRET, token_expiry_seconds=30)
    claims = jwt.decode(service.generate_token("u"), SECRET, ["HS256"])
    assert claims["exp"] - claims["iat"] == 30


@pytest.mark.parametrize("claim", ["user_id", "sub", "iat", "exp", "aud", "iss"])
def test_additional_claims_cannot_override_reserved_claims(
    service: JWTAuthService, claim: str
) -> None:
    with pytest.raises(ValueError, match=f"reserved claims: \\['{claim}'\\]"):
        service.generate_token("u1", {claim: "x", "fine": 1})


def test_additional_claims_must_be_json_serialisable(service: JWTAuthService) -> None:
    with pytest.raises(ValueError, match="additional_claims must be JSON-serializable"):
        service.generate_token("u1", {"when": object()})


def test_additional_claims_must_be_a_mapping(service: JWTAuthService) -> None:
    with pytest.raises(ValueError, match="additional_claims must be a mapping"):
        service.generate_token("u1", [("a", 1)])  # type: ignore[arg-type]


@pytest.mark.parametrize("user_id", ["", None, 42])
def test_generate_token_refuses_a_bad_user_id(service: JWTAuthService, user_id: Any) -> None:
    with pytest.raises(ValueError, match="user_id"):
        service.generate_token(user_id)


@pytest.mark.parametrize("expiry", ["60", True, float("nan"), float("inf"), float("-inf")])
def test_generate_token_refuses_a_bad_expiry(service: JWTAuthService, expiry: Any) -> None:
    with pytest.raises(ValueError, match="expiry_seconds"):
        service.generate_token("u1", expiry_seconds=expiry)


@pytest.mark.parametrize("expiry", [-10, -0.5, -86400])
def test_negative_expiry_gives_an_already_expired_token(
    service: JWTAuthService, expiry: float
) -> None:
    # netrun-websocket 1.0 accepted this; users' test suites build expired tokens with it.
    token = service.generate_token("u1", expiry_seconds=expiry)
    claims = jwt.decode(token, SECRET, ["HS256"], options={"verify_exp": False})
    assert claims["exp"] - claims["iat"] == math.ceil(expiry)
    assert claims["exp"] <= claims["iat"] <= time.time()
    assert service.validate_token(token) is None
    assert service.is_token_expired(token) is True
    with pytest.raises(TokenValidationError) as rejected:
        service.validate_token_or_raise(token)
    assert rejected.value.reason == "expired"


@pytest.mark.parametrize("expiry", [0, 0.0, None])
def test_zero_or_none_expiry_means_the_service_default(expiry: float | None) -> None:
    service = JWTAuthService(SECRET, token_expiry_seconds=30)
    claims = jwt.decode(service.generate_token("u", expiry_seconds=expiry), SECRET, ["HS256"])
    assert claims["exp"] - claims["iat"] == 30


# -- constructor checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"secret_key": ""}, "secret_key"),
        ({"secret_key": b""}, "secret_key"),
        ({"secret_key": None}, "secret_key"),
        ({"secret_key": 123}, "secret_key"),
        ({"secret_key": SECRET, "algorithm": "none"}, "algorithm"),
        ({"secret_key": SECRET, "algorithm": "NONE"}, "algorithm"),
        ({"secret_key": SECRET, "algorithm": ""}, "algorithm"),
        ({"secret_key": SECRET, "algorithm": "HS999"}, "algorithm"),
        ({"secret_key": SECRET, "token_expiry_seconds": 0}, "token_expiry_seconds"),
        ({"secret_key": SECRET, "token_expiry_seconds": -1}, "token_expiry_seconds"),
        ({"secret_key": SECRET, "token_expiry_seconds": float("nan")}, "token_expiry_seconds"),
        ({"secret_key": SECRET, "token_expiry_seconds": float("inf")}, "token_expiry_seconds"),
        ({"secret_key": SECRET, "leeway": -0.5}, "leeway"),
        ({"secret_key": SECRET, "algorithms": []}, "algorithms"),
        ({"secret_key": SECRET, "algorithms": "HS256"}, "algorithms"),
        ({"secret_key": SECRET, "algorithms": ["HS256", "none"]}, "algorithms"),
        ({"secret_key": SECRET, "algorithms": ["HS384"]}, "algorithms"),
        ({"secret_key": SECRET, "algorithms": ["HS256", "RS256"]}, "algorithms"),
        ({"secret_key": SECRET, "audience": ""}, "audience"),
        ({"secret_key": SECRET, "audience": []}, "audience"),
        ({"secret_key": SECRET, "issuer": ""}, "issuer"),
        ({"secret_key": SECRET, "public_key": "x"}, "public_key"),
        ({"secret_key": "secret", "algorithm": "RS256"}, "secret_key"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(
    kwargs: dict[str, Any], argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        JWTAuthService(**kwargs)


def test_a_pem_key_is_refused_as_an_hmac_secret(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError, match="secret_key is not usable as an HMAC secret"):
        JWTAuthService(_pem_public(rsa_key))


def test_several_accepted_hs_algorithms() -> None:
    service = JWTAuthService(SECRET + "x" * 40, algorithms=["HS256", "HS512"])
    token = jwt.encode(_claims(), SECRET + "x" * 40, algorithm="HS512")
    assert service.validate_token(token) is not None


# -- validating --------------------------------------------------------------------------------


def _reason(service: JWTAuthService, token: Any) -> str:
    with pytest.raises(TokenValidationError) as caught:
        service.validate_token_or_raise(token)
    assert service.validate_token(token) is None
    return caught.value.reason


def test_valid_token_round_trips(service: JWTAuthService) -> None:
    token = service.generate_token("u1", {"room": "lobby"})
    payload = service.validate_token(token)
    assert payload is not None
    assert payload["user_id"] == "u1" and payload["room"] == "lobby"
    assert service.validate_token_or_raise(token) == payload
    assert service.validate_token(token.encode()) == payload


def test_expired_token(service: JWTAuthService) -> None:
    now = int(time.time())
    token = jwt.encode(_claims(iat=now - 100, exp=now - 10), SECRET, algorithm="HS256")
    assert _reason(service, token) == "expired"


def test_leeway_accepts_slightly_expired_token() -> None:
    now = int(time.time())
    token = jwt.encode(_claims(iat=now - 100, exp=now - 10), SECRET, algorithm="HS256")
    assert JWTAuthService(SECRET, leeway=60).validate_token(token) is not None


def test_tampered_payload_fails_the_signature(service: JWTAuthService) -> None:
    header, _, signature = service.generate_token("u1").split(".")
    forged = _b64(json.dumps(_claims(user_id="admin", sub="admin")).encode())
    assert _reason(service, f"{header}.{forged}.{signature}") == "invalid_signature"


def test_token_signed_with_another_secret(service: JWTAuthService) -> None:
    token = jwt.encode(_claims(), OTHER_SECRET, algorithm="HS256")
    assert _reason(service, token) == "invalid_signature"


def test_alg_none_token_is_refused(service: JWTAuthService) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(_claims()).encode())
    assert _reason(service, f"{header}.{payload}.") == "invalid_token"


def test_token_with_an_algorithm_not_in_the_accepted_list(service: JWTAuthService) -> None:
    token = jwt.encode(_claims(), SECRET + "x" * 40, algorithm="HS512")
    assert _reason(service, token) == "invalid_token"


def test_missing_exp_is_refused(service: JWTAuthService) -> None:
    token = jwt.encode(_claims(exp=None), SECRET, algorithm="HS256")
    assert _reason(service, token) == "missing_claim"


def test_missing_user_id_and_sub_is_refused(service: JWTAuthService) -> None:
    token = jwt.encode(_claims(user_id=None, sub=None), SECRET, algorithm="HS256")
    assert _reason(service, token) == "missing_claim"


def test_non_string_user_id_is_refused(service: JWTAuthService) -> None:
    token = jwt.encode(_claims(user_id=12, sub=None), SECRET, algorithm="HS256")
    assert _reason(service, token) == "invalid_token"


def test_not_yet_valid_token_is_refused(service: JWTAuthService) -> None:
    token = jwt.encode(_claims(nbf=int(time.time()) + 600), SECRET, algorithm="HS256")
    assert _reason(service, token) == "invalid_token"


@pytest.mark.parametrize(
    "garbage",
    ["", "garbage", "a.b.c", "a.b", "....", b"\xff\xfe", None, 42, {}],
)
def test_garbage_is_invalid_and_never_raises(service: JWTAuthService, garbage: Any) -> None:
    assert _reason(service, garbage) == "invalid_token"
    assert service.get_user_id(garbage) is None
    assert service.is_token_expired(garbage) is True


def test_audience_and_issuer_are_written_and_required() -> None:
    service = JWTAuthService(SECRET, audience="chat", issuer="netrun")
    token = service.generate_token("u1")
    claims = jwt.decode(token, SECRET, ["HS256"], audience="chat")
    assert claims["aud"] == "chat" and claims["iss"] == "netrun"
    assert service.validate_token(token) is not None

    wrong_aud = jwt.encode(_claims(aud="other", iss="netrun"), SECRET, algorithm="HS256")
    assert _reason(service, wrong_aud) == "invalid_audience"
    wrong_iss = jwt.encode(_claims(aud="chat", iss="evil"), SECRET, algorithm="HS256")
    assert _reason(service, wrong_iss) == "invalid_issuer"
    no_aud = jwt.encode(_claims(iss="netrun"), SECRET, algorithm="HS256")
    assert _reason(service, no_aud) == "missing_claim"
    no_iss = jwt.encode(_claims(aud="chat"), SECRET, algorithm="HS256")
    assert _reason(service, no_iss) == "missing_claim"


def test_a_token_with_an_audience_is_refused_by_a_service_without_one(
    service: JWTAuthService,
) -> None:
    token = jwt.encode(_claims(aud="chat"), SECRET, algorithm="HS256")
    assert _reason(service, token) == "invalid_audience"


def test_audience_list() -> None:
    service = JWTAuthService(SECRET, audience=["chat", "admin"])
    assert service.validate_token(service.generate_token("u1")) is not None
    token = jwt.encode(_claims(aud="admin"), SECRET, algorithm="HS256")
    assert service.validate_token(token) is not None


# -- helpers ------------------------------------------------------------------------------------


def test_get_user_id(service: JWTAuthService) -> None:
    assert service.get_user_id(service.generate_token("user-7")) == "user-7"
    sub_only = jwt.encode(_claims(user_id=None, sub="from-sub"), SECRET, algorithm="HS256")
    assert service.get_user_id(sub_only) == "from-sub"
    assert service.get_user_id(jwt.encode(_claims(), OTHER_SECRET, algorithm="HS256")) is None


def test_is_token_expired(service: JWTAuthService) -> None:
    assert service.is_token_expired(service.generate_token("u1")) is False
    now = int(time.time())
    expired = jwt.encode(_claims(iat=now - 100, exp=now - 1), SECRET, algorithm="HS256")
    assert service.is_token_expired(expired) is True
    # Documented: a tampered token counts as expired (unusable), never as fresh.
    tampered = jwt.encode(_claims(), OTHER_SECRET, algorithm="HS256")
    assert service.is_token_expired(tampered) is True


def test_token_validation_error_carries_only_the_reason() -> None:
    error = TokenValidationError("expired")
    assert error.reason == "expired"
    assert str(error) == "token rejected: expired"
    assert isinstance(error, ValueError)
    with pytest.raises(ValueError, match="unknown token rejection reason"):
        TokenValidationError("bogus")  # type: ignore[arg-type]


def test_token_text_never_appears_in_errors_or_logs(
    service: JWTAuthService, caplog: pytest.LogCaptureFixture
) -> None:
    forged = jwt.encode(_claims(), OTHER_SECRET, algorithm="HS256")
    caplog.set_level(logging.DEBUG, logger="netrun_ws.auth")
    with pytest.raises(TokenValidationError) as caught:
        service.validate_token_or_raise(forged)
    assert service.validate_token(forged) is None
    signature = forged.rsplit(".", 1)[1]
    rendered = str(caught.value) + repr(caught.value) + caplog.text
    assert forged not in rendered and signature not in rendered
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# -- asymmetric keys -----------------------------------------------------------------------------


def test_rs256_signs_with_private_and_verifies_with_derived_public(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    service = JWTAuthService(_pem_private(rsa_key), algorithm="RS256")
    token = service.generate_token("u1")
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert jwt.decode(token, _pem_public(rsa_key), algorithms=["RS256"])["user_id"] == "u1"
    assert service.validate_token(token) is not None


def test_rs256_verify_only_service(rsa_key: rsa.RSAPrivateKey) -> None:
    issuer = JWTAuthService(_pem_private(rsa_key), algorithm="RS256")
    for no_private_key in (None, ""):
        verifier = JWTAuthService(
            no_private_key, algorithm="RS256", public_key=_pem_public(rsa_key)
        )
        assert verifier.get_user_id(issuer.generate_token("u9")) == "u9"
        with pytest.raises(RuntimeError, match="verify-only"):
            verifier.generate_token("u9")


def test_rs256_rejects_token_from_another_key(
    rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    service = JWTAuthService(_pem_private(rsa_key), algorithm="RS256")
    token = jwt.encode(_claims(), _pem_private(other_rsa_key), algorithm="RS256")
    assert _reason(service, token) == "invalid_signature"


def test_rs256_refuses_hs256_token_forged_with_the_public_key(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    # The key-confusion attack: an HMAC token whose secret is the (public) RSA PEM.
    service = JWTAuthService(_pem_private(rsa_key), algorithm="RS256")
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(_claims()).encode())
    mac = hmac.new(_pem_public(rsa_key), f"{header}.{payload}".encode(), hashlib.sha256)
    assert _reason(service, f"{header}.{payload}.{_b64(mac.digest())}") == "invalid_token"


def test_hs256_service_refuses_rs256_token(rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(_claims(), _pem_private(rsa_key), algorithm="RS256")
    assert _reason(JWTAuthService(SECRET), token) == "invalid_token"


def test_es256_round_trip(ec_key: ec.EllipticCurvePrivateKey) -> None:
    service = JWTAuthService(
        _pem_private(ec_key), algorithm="ES256", public_key=_pem_public(ec_key)
    )
    assert service.get_user_id(service.generate_token("u1")) == "u1"


def test_asymmetric_key_errors(
    rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey, ec_key: Any
) -> None:
    with pytest.raises(ValueError, match="public_key does not match secret_key"):
        JWTAuthService(
            _pem_private(rsa_key), algorithm="RS256", public_key=_pem_public(other_rsa_key)
        )
    with pytest.raises(ValueError, match="public_key must be a public key"):
        JWTAuthService(_pem_private(rsa_key), algorithm="RS256", public_key=_pem_private(rsa_key))
    with pytest.raises(ValueError, match="secret_key must be a PEM private key"):
        JWTAuthService(_pem_public(rsa_key), algorithm="RS256")
    with pytest.raises(ValueError, match="public_key must be a PEM public key for RS256"):
        JWTAuthService(None, algorithm="RS256", public_key=_pem_public(ec_key))
    with pytest.raises(ValueError, match="secret_key must not be empty"):
        JWTAuthService(None, algorithm="RS256")
    with pytest.raises(ValueError, match="algorithms mixes key families"):
        JWTAuthService(_pem_private(rsa_key), algorithm="RS256", algorithms=["RS256", "HS256"])


# -- the [auth] extra ------------------------------------------------------------------------------


def test_require_extra_returns_the_module() -> None:
    assert require_extra("json", "core", "Test") is json


def test_require_extra_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jwt", None)
    with pytest.raises(ImportError) as caught:
        require_extra("jwt", "auth", "JWTAuthService", distribution="PyJWT")
    assert str(caught.value) == "JWTAuthService needs PyJWT: pip install 'netrun-ws[auth]'"
    assert caught.value.name == "jwt"


def test_service_without_pyjwt_raises_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_module, "JWT_AVAILABLE", False)
    monkeypatch.setitem(sys.modules, "jwt", None)
    with pytest.raises(ImportError, match=r"pip install 'netrun-ws\[auth\]'"):
        JWTAuthService(SECRET)


def test_auth_module_imports_without_pyjwt() -> None:
    # A fresh interpreter where ``import jwt`` fails, as on a core-only install.
    script = (
        "import sys; sys.modules['jwt'] = None\n"
        "import netrun_ws.auth as auth\n"
        "assert auth.JWT_AVAILABLE is False\n"
        "try:\n"
        "    auth.JWTAuthService('x' * 32)\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env={"PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "JWTAuthService needs PyJWT: pip install 'netrun-ws[auth]'"


# -- cheap checks before PyJWT, required claims, size limit -------------------------------------


def _forged(header: object, payload: object | None = None) -> str:
    body = _b64(json.dumps(payload if payload is not None else _claims()).encode())
    return f"{_b64(json.dumps(header).encode())}.{body}.{_b64(b'sig')}"


@pytest.mark.parametrize(
    "token",
    [
        _forged({"alg": "none"}),
        _forged({"alg": "NONE"}),
        _forged({"alg": "RS256"}),  # allowed elsewhere, not by this service
        _forged({"alg": "HS256", "x": [[[[["deep"]]]]]}),
        _forged({"alg": "HS256", "x": "[[[[[[[[[[ in a string is fine"}) + "tampered",
        _forged({"alg": "HS256", "kid": 7}),
        _forged(["HS256"]),
        "e" * 9000 + ".e.e",
        "a.b",
        "a.b.c.d",
        "a$.b.c",
        "тoken.a.b".encode(),
    ],
)
def test_hostile_tokens_are_refused_as_invalid(service: JWTAuthService, token: Any) -> None:
    with pytest.raises(TokenValidationError) as caught:
        service.validate_token_or_raise(token)
    assert caught.value.reason in ("invalid_token", "invalid_signature")
    text = token if isinstance(token, str) else token.decode()
    assert text not in str(caught.value)


def test_header_checks_run_before_pyjwt_parses(
    service: JWTAuthService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_run(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("PyJWT reached")

    monkeypatch.setattr(jwt, "decode", must_not_run)
    deep = _b64(("[" * 3000 + "]" * 3000).encode())
    for token in (f"{deep}.e30.c2ln", _forged({"alg": "none"}), "x" * 10000):
        with pytest.raises(TokenValidationError, match="invalid_token"):
            service.validate_token_or_raise(token)


def test_a_string_with_brackets_in_the_header_is_not_nesting(service: JWTAuthService) -> None:
    header = {"alg": "HS256", "typ": "JWT", "note": '[[[[{{{{ "\\" ]]'}
    token = jwt.encode(_claims(), SECRET, algorithm="HS256", headers=header)
    assert service.validate_token(token) is not None


def test_max_token_length_is_configurable() -> None:
    service = JWTAuthService(SECRET, max_token_length=512)
    small = service.generate_token("u1")
    big = service.generate_token("u1", {"pad": "x" * 600})
    assert service.validate_token(small) is not None
    assert service.validate_token(big) is None
    with pytest.raises(ValueError, match="max_token_length"):
        JWTAuthService(SECRET, max_token_length=10)


def test_required_claims_always_include_exp() -> None:
    service = JWTAuthService(SECRET, required_claims=["tenant"])
    assert service.required_claims == ("exp", "tenant")
    with_tenant = service.generate_token("u1", {"tenant": "t1"})
    assert service.validate_token(with_tenant) is not None
    with pytest.raises(TokenValidationError, match="missing_claim"):
        service.validate_token_or_raise(service.generate_token("u1"))
    no_exp = jwt.encode({"sub": "u1", "tenant": "t1"}, SECRET, algorithm="HS256")
    with pytest.raises(TokenValidationError, match="missing_claim"):
        service.validate_token_or_raise(no_exp)


@pytest.mark.parametrize("claims", ["exp", [""], [1]])
def test_required_claims_must_be_names(claims: Any) -> None:
    with pytest.raises(ValueError, match="required_claims"):
        JWTAuthService(SECRET, required_claims=claims)


def test_token_policy_header_returns_the_unverified_header() -> None:
    policy = auth_module.TokenPolicy(algorithms=("HS256",))
    token = jwt.encode(_claims(), SECRET, algorithm="HS256", headers={"kid": "k1"})
    assert policy.header(token) == {"alg": "HS256", "kid": "k1", "typ": "JWT"}


def test_settings_changed_after_construction_apply_to_the_next_verification() -> None:
    """The service keeps its policy between verifications, and makes it again when a setting
    changes."""
    service = JWTAuthService(SECRET)
    token = service.generate_token("u1", expiry_seconds=-5)
    with pytest.raises(TokenValidationError, match="expired"):
        service.validate_token_or_raise(token)
    service.leeway = 60.0
    assert service.validate_token_or_raise(token)["user_id"] == "u1"
    service.audience = "api"
    with pytest.raises(TokenValidationError, match="missing_claim"):
        service.validate_token_or_raise(token)


def test_verified_claims_share_their_names_across_tokens(service: JWTAuthService) -> None:
    # A connection keeps its claims for its lifetime: the names are one string per process and
    # `sub` is the same object as an equal `user_id`; the claims are equal to the token's.
    first = service.validate_token_or_raise(service.generate_token("alice", {"room_a": 1}))
    second = service.validate_token_or_raise(service.generate_token("bob", {"room_a": 2}))
    assert first["user_id"] == first["sub"] == "alice" and first["room_a"] == 1
    assert first["user_id"] is first["sub"]
    names = {name: name for name in first}
    assert all(names[name] is name for name in second)
    token = service.generate_token("carol")
    assert service.validate_token_or_raise(token) == jwt.decode(
        token, options={"verify_signature": False}
    )
