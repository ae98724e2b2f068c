"""Where a token may travel (header, subprotocol, query) and each key source, over real servers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import ValidationError
from starlette.websockets import WebSocket

from netrun_ws import create_app
from netrun_ws.builtin import auth_jwt
from netrun_ws.redact import DEFAULT_PARAMS
from tests.security import (
    VERBOSE_SERVER,
    JWKSEndpoint,
    attempt,
    claims,
    jwk_of,
    jwt_config,
    leaks,
    public_pem,
    server_logs,
    sign,
    token_parts,
)
from tests.support.server import serve

# Every test runs under each websocket protocol (the few without a server cost nothing).
pytestmark = pytest.mark.usefixtures("served_ws_protocol")

SECRET = "transport-test-secret-0123456789abcdef"
REFUSED = (1008, "authentication required")


def hs_token(user: str = "alice") -> str:
    return sign(SECRET, "HS256", claims(user))


def hs_config(**options: Any) -> dict[str, Any]:
    return jwt_config(secret=SECRET, **options)


def bearer(token: str) -> dict[str, Any]:
    return {"additional_headers": {"Authorization": f"Bearer {token}"}}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# -- transports --------------------------------------------------------------------------------


async def test_authorization_bearer_header() -> None:
    async with serve(create_app(hs_config())) as addr:
        outcome = await attempt(f"ws://{addr}/ws", **bearer(hs_token()))
    assert outcome.welcome is not None and outcome.welcome["user_id"] == "alice"


async def test_bearer_subprotocol_is_read_and_never_echoed() -> None:
    token = hs_token()
    async with serve(create_app(hs_config())) as addr:
        offered = await attempt(f"ws://{addr}/ws", subprotocols=["netrun-ws", f"bearer.{token}"])
        alone = await attempt(f"ws://{addr}/ws", subprotocols=[f"bearer.{token}"])
    assert offered.welcome is not None and offered.welcome["user_id"] == "alice"
    assert offered.subprotocol == "netrun-ws"
    # Offered nothing else, the server picks no subprotocol rather than the secret entry.
    assert alone.welcome is not None and alone.welcome["user_id"] == "alice"
    assert alone.subprotocol is None


async def test_subprotocol_prefix_is_configurable_and_can_be_turned_off() -> None:
    token = hs_token()
    async with serve(create_app(hs_config(subprotocol_prefix="jwt-"))) as addr:
        custom = await attempt(f"ws://{addr}/ws", subprotocols=["netrun-ws", f"jwt-{token}"])
        default = await attempt(f"ws://{addr}/ws", subprotocols=["netrun-ws", f"bearer.{token}"])
    async with serve(create_app(hs_config(subprotocol_prefix=None))) as addr:
        off = await attempt(f"ws://{addr}/ws", subprotocols=["netrun-ws", f"bearer.{token}"])
    assert custom.welcome is not None and custom.welcome["user_id"] == "alice"
    assert (default.code, default.reason) == REFUSED
    assert (off.code, off.reason) == REFUSED


async def test_query_parameter_is_refused_unless_enabled() -> None:
    token = hs_token()
    async with serve(create_app(hs_config())) as addr:
        default = await attempt(f"ws://{addr}/ws?token={token}")
    async with serve(create_app(hs_config(query_param="token"))) as addr:
        enabled = await attempt(f"ws://{addr}/ws?token={token}")
    async with serve(create_app(hs_config(query_param="access"))) as addr:
        renamed = await attempt(f"ws://{addr}/ws?access={token}")
        other_name = await attempt(f"ws://{addr}/ws?token={token}")
    assert (default.welcome, default.code, default.reason) == (None, *REFUSED)
    assert enabled.welcome is not None and enabled.welcome["user_id"] == "alice"
    assert renamed.welcome is not None and renamed.welcome["user_id"] == "alice"
    assert (other_name.code, other_name.reason) == REFUSED


async def test_a_renamed_query_param_is_redacted_from_every_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = hs_token()
    config = hs_config(query_param="access")
    caplog.set_level(logging.DEBUG)
    with server_logs(caplog.handler, config):
        async with serve(create_app(config), **VERBOSE_SERVER) as addr:
            outcome = await attempt(f"ws://{addr}/ws?access={token}")
    assert outcome.welcome is not None
    assert any("access=***" in record.getMessage() for record in caplog.records)
    assert leaks(caplog.records, *token_parts(token)) == []


def test_redacted_params_adds_the_configured_name() -> None:
    enabled = auth_jwt.Options(secret=SECRET, query_param="access")
    assert auth_jwt.redacted_params(enabled) == (*DEFAULT_PARAMS, "access")
    assert auth_jwt.redacted_params(auth_jwt.Options(secret=SECRET)) == DEFAULT_PARAMS


@pytest.mark.parametrize(
    ("line", "redacted"),
    [
        ("< authorization: Bearer abc.def.ghi", "< authorization: Bearer ***"),
        ("< Authorization: Basic dXNlcjpwdw==", "< Authorization: Basic ***"),
        ("< sec-websocket-protocol: netrun-ws, bearer.abc.def", "< sec-websocket-protocol: "),
        ("""< TEXT '{"type": "refresh", "token": "abc.def.ghi"}'""", '"token": "***"'),
    ],
)
def test_credential_log_filter_hides_the_value(line: str, redacted: str) -> None:
    record = logging.LogRecord("uvicorn.error", logging.DEBUG, __file__, 1, line, None, None)
    (_, credentials) = auth_jwt.log_filters(auth_jwt.Options(secret=SECRET))
    assert credentials.filter(record) is True
    assert redacted in record.getMessage()
    assert "abc" not in record.getMessage() and "dXNlcjpwdw" not in record.getMessage()


async def test_the_header_wins_over_the_subprotocol_and_the_query() -> None:
    header, other = hs_token("from-header"), hs_token("from-elsewhere")
    async with serve(create_app(hs_config(query_param="token"))) as addr:
        url = f"ws://{addr}/ws?token={other}"
        both = await attempt(url, subprotocols=[f"bearer.{other}"], **bearer(header))
        bad_header = await attempt(url, subprotocols=[f"bearer.{other}"], **bearer("forged"))
        subprotocol = await attempt(url, subprotocols=[f"bearer.{header}"])
    assert both.welcome is not None and both.welcome["user_id"] == "from-header"
    # The first transport present is the one verified: a bad header is not rescued.
    assert (bad_header.code, bad_header.reason) == (1008, "invalid token")
    assert subprotocol.welcome is not None and subprotocol.welcome["user_id"] == "from-header"


async def test_no_token_at_all_is_authentication_required() -> None:
    async with serve(create_app(hs_config())) as addr:
        outcome = await attempt(f"ws://{addr}/ws", additional_headers={"Authorization": "Basic x"})
    assert (outcome.welcome, outcome.code, outcome.reason) == (None, *REFUSED)


# -- key sources -------------------------------------------------------------------------------


async def test_rs256_with_a_public_key_file_relative_to_the_cwd(
    rsa_key: rsa.RSAPrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "pub.pem").write_bytes(public_pem(rsa_key))
    monkeypatch.chdir(tmp_path)
    config = jwt_config(public_key_file="keys/pub.pem", algorithms=["RS256"])
    token = sign(rsa_key, "RS256", claims())
    async with serve(create_app(config)) as addr:
        outcome = await attempt(f"ws://{addr}/ws", **bearer(token))
    assert outcome.welcome is not None and outcome.welcome["user_id"] == "alice"


async def test_a_relative_public_key_file_is_relative_to_the_config_file(
    rsa_key: rsa.RSAPrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy = tmp_path / "deploy"
    (deploy / "keys").mkdir(parents=True)
    (deploy / "keys" / "pub.pem").write_bytes(public_pem(rsa_key))
    config_file = deploy / "netrun_ws.yaml"
    config_file.write_text(
        yaml.safe_dump({**jwt_config(public_key_file="keys/pub.pem", algorithms=["RS256"])})
    )
    monkeypatch.chdir(tmp_path)  # not the config's directory: keys/pub.pem does not exist here
    token = sign(rsa_key, "RS256", claims())
    async with serve(create_app(str(config_file))) as addr:
        outcome = await attempt(f"ws://{addr}/ws", **bearer(token))
    assert outcome.welcome is not None and outcome.welcome["user_id"] == "alice"


@pytest.mark.parametrize(
    ("algorithm", "make_key"),
    [
        ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate),
        ("PS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ],
)
async def test_other_asymmetric_algorithms_with_a_public_key_file(
    algorithm: str, make_key: Any, tmp_path: Path
) -> None:
    key = make_key()
    path = tmp_path / "pub.pem"
    path.write_bytes(public_pem(key))
    config = jwt_config(public_key_file=str(path), algorithms=[algorithm])
    async with serve(create_app(config)) as addr:
        good = await attempt(f"ws://{addr}/ws", **bearer(sign(key, algorithm, claims())))
        other = await attempt(f"ws://{addr}/ws", **bearer(sign(make_key(), algorithm, claims())))
    assert good.welcome is not None and good.welcome["user_id"] == "alice"
    assert (other.code, other.reason) == (1008, "invalid token")


async def test_jwks_rs256_and_es256_keys_by_kid(rsa_key: rsa.RSAPrivateKey) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    endpoint = JWKSEndpoint(keys=[jwk_of(rsa_key, "rsa-1")])
    ec_endpoint = JWKSEndpoint(keys=[jwk_of(ec_key, "ec-1", "ES256")])
    async with serve(endpoint.app()) as rs_jwks, serve(ec_endpoint.app()) as es_jwks:
        rs_config = jwt_config(jwks_url=f"http://{rs_jwks}/jwks.json", algorithms=["RS256"])
        es_config = jwt_config(jwks_url=f"http://{es_jwks}/jwks.json", algorithms=["ES256"])
        async with serve(create_app(rs_config)) as rs, serve(create_app(es_config)) as es:
            rs_ok = await attempt(
                f"ws://{rs}/ws", **bearer(sign(rsa_key, "RS256", claims(), "rsa-1"))
            )
            es_ok = await attempt(
                f"ws://{es}/ws", **bearer(sign(ec_key, "ES256", claims("bob"), "ec-1"))
            )
            no_kid = await attempt(f"ws://{rs}/ws", **bearer(sign(rsa_key, "RS256", claims())))
    assert rs_ok.welcome is not None and rs_ok.welcome["user_id"] == "alice"
    assert es_ok.welcome is not None and es_ok.welcome["user_id"] == "bob"
    # A token without kid uses the only key of a one-key set.
    assert no_kid.welcome is not None and no_kid.welcome["user_id"] == "alice"
    assert (endpoint.requests, ec_endpoint.requests) == (1, 1)


async def test_jwks_ignores_keys_of_the_wrong_type_and_pinned_to_another_alg(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    # An "oct" (HMAC) key in the set must never verify: it would turn JWKS into a shared secret.
    oct_key = {
        "kty": "oct",
        "kid": "hmac",
        "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM0NTY3ODk",
    }
    endpoint = JWKSEndpoint(keys=[oct_key, jwk_of(rsa_key, "pinned", "RS512")])
    async with serve(endpoint.app()) as jwks:
        config = jwt_config(jwks_url=f"http://{jwks}/jwks.json", algorithms=["RS256", "RS512"])
        async with serve(create_app(config)) as addr:
            hmac_token = sign(b"secret-secret-secret-secret-0123456789", "HS256", claims(), "hmac")
            as_hmac = await attempt(f"ws://{addr}/ws", **bearer(hmac_token))
            wrong_alg = await attempt(
                f"ws://{addr}/ws", **bearer(sign(rsa_key, "RS256", claims(), "pinned"))
            )
            right_alg = await attempt(
                f"ws://{addr}/ws", **bearer(sign(rsa_key, "RS512", claims(), "pinned"))
            )
    assert (as_hmac.code, as_hmac.reason) == (1008, "invalid token")
    assert (wrong_alg.code, wrong_alg.reason) == (1008, "invalid token")
    assert right_alg.welcome is not None and right_alg.welcome["user_id"] == "alice"


# -- options: bad key sources are config errors naming the option ------------------------------


def options_error(**options: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        auth_jwt.Options.model_validate(options)
    return str(caught.value)


def test_a_missing_public_key_file_names_the_option(tmp_path: Path) -> None:
    message = options_error(public_key_file=str(tmp_path / "nope.pem"), algorithms=["RS256"])
    assert "public_key_file" in message and "No such file or directory" in message
    assert "Traceback" not in message


def test_a_public_key_file_that_is_not_a_public_key_names_the_option(
    rsa_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    path = tmp_path / "garbage.pem"
    path.write_text("not a key")
    message = options_error(public_key_file=str(path), algorithms=["RS256"])
    assert "public_key_file" in message and "PEM public key" in message


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "exactly one of"),
        ({"secret": SECRET, "jwks_url": "https://idp.test/jwks"}, "got secret, jwks_url"),
        ({"secret": SECRET, "algorithms": ["RS256"]}, "`secret` is for HS*"),
        ({"jwks_url": "https://idp.test/jwks"}, "need `secret`"),
        ({"jwks_url": "file:///etc/passwd", "algorithms": ["RS256"]}, "not an http(s) URL"),
        ({"secret": SECRET, "algorithms": ["HS256", "RS256"]}, "mix key families"),
        ({"secret": SECRET, "algorithms": ["none"]}, "unknown or refused"),
        ({"secret": SECRET, "query_param": "a b"}, "not a plain query parameter"),
        ({"secret": SECRET, "subprotocol_prefix": "bearer "}, "RFC 7230 token"),
        ({"secret": SECRET, "max_token_bytes": 10}, "greater than or equal to 256"),
    ],
)
def test_bad_options_are_specific_errors(options: dict[str, Any], expected: str) -> None:
    assert expected in options_error(**options)


def test_exp_is_always_required_and_query_param_is_off_by_default() -> None:
    options = auth_jwt.Options(secret=SECRET, required_claims=["nbf"])
    assert options.required_claims == ["exp", "nbf"]
    assert auth_jwt.Options(secret=SECRET).query_param is None
    assert auth_jwt.Options(secret=SECRET).subprotocol_prefix == "bearer."


def test_service_from_a_jwks_url_cannot_sign() -> None:
    options = auth_jwt.Options(jwks_url="https://idp.test/jwks", algorithms=["RS256"])
    with pytest.raises(ValueError, match="jwks_url"):
        auth_jwt.service_from(options)


@pytest.mark.parametrize("container", [list, tuple, iter])
def test_the_header_token_is_read_from_the_scope_as_starlette_reads_it(container: Any) -> None:
    # Read from the scope's list, without the Headers object (and list copy) Starlette would
    # cache on the socket; any other iterable is left to Starlette's own reading.
    async def never(*_: Any) -> Any:
        raise AssertionError("not called")

    fields = [(b"authorization", b"Bearer abc"), (b"authorization", b"Bearer later")]
    scope = {"type": "websocket", "headers": container(fields), "subprotocols": ()}
    socket = WebSocket(scope, never, never)
    assert auth_jwt.token_from(socket, None) == "abc"
    assert ("_headers" in vars(socket)) is (container is iter)
    assert auth_jwt.token_from(WebSocket({**scope, "headers": []}, never, never), None) is None
