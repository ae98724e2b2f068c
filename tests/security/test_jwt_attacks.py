"""The JWT attack suite over a real server: forged, tampered, expired and hostile tokens.

Result required: no attack is accepted; each is refused with 1008 and a public reason
("invalid token" / "token expired"); no token text reaches any server log line, even at TRACE.
Every test runs with netrun-ws's checks built on PyJWT internals and with PyJWT's own (the
fallback, netrun_ws._upstream.pyjwt).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from websockets.asyncio.client import connect

from netrun_ws import create_app
from netrun_ws.builtin.auth_jwt import _SUBPROTOCOL_TOKEN
from tests.security import (
    VERBOSE_SERVER,
    JWKSEndpoint,
    Outcome,
    attempt,
    b64,
    claims,
    forge,
    jwk_of,
    jwt_config,
    leaks,
    public_pem,
    server_logs,
    sign,
    token_parts,
)
from tests.support.server import serve

pytestmark = pytest.mark.usefixtures("pyjwt_fence")

AUDIENCE = "netrun-tests"
ISSUER = "https://issuer.test"
LEEWAY = 30
# Below the default (8192): a header line over 8 KB gets 431 before the app runs (transport),
# so only a lower limit shows the plugin's own size check on the header transports.
MAX_TOKEN_BYTES = 4096


@dataclass(frozen=True)
class Keys:
    server: rsa.RSAPrivateKey  # the server verifies with its public key
    attacker: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    public_key_file: Path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    server = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("keys") / "server.pub.pem"
    path.write_bytes(public_pem(server))
    return Keys(
        server=server,
        attacker=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec=ec.generate_private_key(ec.SECP256R1()),
        public_key_file=path,
    )


def rs256_config(keys: Keys, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "public_key_file": str(keys.public_key_file),
        "algorithms": ["RS256"],
        "audience": AUDIENCE,
        "issuer": ISSUER,
        "leeway": LEEWAY,
        "max_token_bytes": MAX_TOKEN_BYTES,
    }
    options.update(overrides)
    return jwt_config(**options)


def good_claims(**overrides: Any) -> dict[str, Any]:
    return claims(**{"aud": AUDIENCE, "iss": ISSUER, **overrides})


def valid(keys: Keys, **overrides: Any) -> str:
    return sign(keys.server, "RS256", good_claims(**overrides))


def hs256_with_public_key(keys: Keys) -> str:
    # The key-confusion attack: HMAC keyed with the server's (public) RSA PEM.
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(good_claims()).encode())
    mac = hmac.new(public_pem(keys.server), f"{header}.{body}".encode(), hashlib.sha256)
    return f"{header}.{body}.{b64(mac.digest())}"


def tampered(keys: Keys) -> str:
    # Alice's genuine signature on a payload that says "mallory".
    genuine = valid(keys).split(".")
    forged = valid(keys, sub="mallory").split(".")
    return f"{forged[0]}.{forged[1]}.{genuine[2]}"


def nested_header(depth: int) -> str:
    text = '{"alg":"RS256","x":' + "[" * depth + "]" * depth + "}"
    return forge(b64(text.encode()), good_claims())


def attacker_with_header(keys: Keys, **header: Any) -> str:
    # Signed with the attacker's key, which the header claims to carry or point to.
    return jwt.encode(good_claims(), keys.attacker, algorithm="RS256", headers=header)


INVALID, EXPIRED = "invalid token", "token expired"

ATTACKS: dict[str, tuple[Callable[[Keys], str], str]] = {
    "alg none": (lambda k: forge({"alg": "none", "typ": "JWT"}, good_claims(), b""), INVALID),
    "alg None": (lambda k: forge({"alg": "None", "typ": "JWT"}, good_claims(), b""), INVALID),
    "alg NONE": (lambda k: forge({"alg": "NONE", "typ": "JWT"}, good_claims(), b""), INVALID),
    "alg nOnE, signature": (lambda k: forge({"alg": "nOnE"}, good_claims()), INVALID),
    "alg none, dot-terminated": (
        lambda k: forge({"alg": "none"}, good_claims(), b"").rstrip(".") + ".",
        INVALID,
    ),
    "HS256 keyed with the RS public key": (hs256_with_public_key, INVALID),
    "tampered payload": (tampered, INVALID),
    "signed with another RSA key": (
        lambda k: sign(k.attacker, "RS256", good_claims()),
        INVALID,
    ),
    "ES256 (not allowlisted)": (lambda k: sign(k.ec, "ES256", good_claims()), INVALID),
    "missing exp": (lambda k: valid(k, exp=None), INVALID),
    "expired beyond leeway": (lambda k: valid(k, lifetime=-(LEEWAY + 90)), EXPIRED),
    "wrong aud": (lambda k: valid(k, aud="someone-else"), INVALID),
    "missing aud": (lambda k: valid(k, aud=None), INVALID),
    "wrong iss": (lambda k: valid(k, iss="https://evil.test"), INVALID),
    "missing iss": (lambda k: valid(k, iss=None), INVALID),
    "not yet valid (nbf)": (lambda k: valid(k, nbf=int(time.time()) + 3600), INVALID),
    "no user": (lambda k: valid(k, sub=None), INVALID),
    "user not a string": (lambda k: valid(k, sub=None, user_id=42), INVALID),
    "header nested 2000 deep": (lambda k: nested_header(2000), INVALID),
    "header nested 300 deep (short)": (lambda k: nested_header(300), INVALID),
    "header nested objects": (
        lambda k: forge(b64(b'{"alg":"RS256","a":{"b":{"c":{"d":{"e":{}}}}}}'), good_claims()),
        INVALID,
    ),
    "oversize, validly signed": (lambda k: valid(k, pad="x" * 4000), INVALID),
    "oversize garbage": (lambda k: "e" * 6000 + ".e.e", INVALID),
    "embedded jwk header": (
        lambda k: attacker_with_header(k, jwk=jwk_of(k.attacker, "evil")),
        INVALID,
    ),
    "jku header": (lambda k: attacker_with_header(k, jku="http://127.0.0.1:9/jwks"), INVALID),
    "kid not a string": (lambda k: forge({"alg": "RS256", "kid": 7}, good_claims()), INVALID),
    "alg not a string": (lambda k: forge({"alg": ["RS256"]}, good_claims()), INVALID),
    "header is an array": (lambda k: forge(["RS256"], good_claims()), INVALID),
    "header not JSON": (lambda k: f"{b64(b'hello')}.{b64(b'{}')}.{b64(b'sig')}", INVALID),
    "header not UTF-8": (lambda k: f"{b64(bytes([0xFF, 0xFE]))}.e30.c2ln", INVALID),
    "payload not JSON": (
        lambda k: forge({"alg": "RS256"}, good_claims()).split(".")[0] + ".bm90anNvbg.c2ln",
        INVALID,
    ),
    "one segment": (lambda k: "garbage", INVALID),
    "two segments": (lambda k: "a.b", INVALID),
    "four segments": (lambda k: valid(k) + ".extra", INVALID),
    "empty segments": (lambda k: "..", INVALID),
    "not base64url": (lambda k: "e$.e$.e$", INVALID),
    "padding and slashes": (lambda k: "ab==.c/d+.ef==", INVALID),
}


def attack(keys: Keys, name: str) -> tuple[str, str]:
    build, reason = ATTACKS[name]
    return build(keys), reason


async def test_a_valid_token_is_accepted(keys: Keys) -> None:
    # The control: without it, "every attack refused" could mean "everything refused".
    async with serve(create_app(rs256_config(keys))) as addr:
        outcome = await attempt(
            f"ws://{addr}/ws", additional_headers={"Authorization": f"Bearer {valid(keys)}"}
        )
    assert outcome.welcome is not None and outcome.welcome["user_id"] == "alice"


async def test_an_expired_token_within_leeway_is_accepted(keys: Keys) -> None:
    token = valid(keys, lifetime=-(LEEWAY - 20))
    async with serve(create_app(rs256_config(keys))) as addr:
        outcome = await attempt(
            f"ws://{addr}/ws", additional_headers={"Authorization": f"Bearer {token}"}
        )
    assert outcome.welcome is not None and outcome.welcome["user_id"] == "alice"


@pytest.mark.parametrize("name", list(ATTACKS))
async def test_attack_in_the_authorization_header_is_refused_without_logging_it(
    keys: Keys, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    token, reason = attack(keys, name)
    caplog.set_level(logging.DEBUG)
    config = rs256_config(keys)
    with server_logs(caplog.handler, config):
        async with serve(create_app(config), **VERBOSE_SERVER) as addr:
            outcome = await attempt(
                f"ws://{addr}/ws", additional_headers={"Authorization": f"Bearer {token}"}
            )
    assert outcome.welcome is None, f"{name}: accepted"
    assert (outcome.code, outcome.reason) == (1008, reason)
    assert caplog.records, "the server logged nothing: the leak check would prove nothing"
    assert leaks(caplog.records, *token_parts(token)) == []


def wrong_outcomes(outcomes: dict[str, Outcome]) -> list[str]:
    """Names of the attacks whose outcome is not a 1008 with the expected public reason."""
    wrong = []
    for name, outcome in outcomes.items():
        expected = ATTACKS[name][1]
        if outcome.welcome is not None or (outcome.code, outcome.reason) != (1008, expected):
            wrong.append(f"{name}: {outcome}")
    return wrong


async def test_every_attack_as_a_bearer_subprotocol_is_refused(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = {name: attack(keys, name)[0] for name in ATTACKS}
    # A subprotocol entry must be an RFC 7230 token; clients cannot offer anything else.
    offered = {name: t for name, t in tokens.items() if _SUBPROTOCOL_TOKEN.fullmatch(t)}
    assert len(offered) > len(ATTACKS) - 5
    outcomes = {}
    config = rs256_config(keys)
    with server_logs(caplog.handler, config):
        async with serve(create_app(config), **VERBOSE_SERVER) as addr:
            for name, token in offered.items():
                subprotocols: Any = ["netrun-ws", f"bearer.{token}"]
                outcomes[name] = await attempt(f"ws://{addr}/ws", subprotocols=subprotocols)
    assert wrong_outcomes(outcomes) == []
    secrets_ = [part for token in offered.values() for part in token_parts(token)]
    assert leaks(caplog.records, *secrets_) == []


async def first_message_auth(url: str, token: str) -> Outcome:
    async def run() -> Outcome:
        async with connect(url) as client:
            await client.send(json.dumps({"type": "auth", "token": token}))
            try:
                return Outcome(json.loads(await client.recv()))
            except websockets.ConnectionClosed:
                return Outcome(None, client.close_code, client.close_reason or "")

    return await asyncio.wait_for(run(), 5)


async def test_every_attack_as_first_message_auth_is_refused(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = rs256_config(keys)
    config["server"] = {**config["server"], "first_message_auth": True}
    tokens = {name: attack(keys, name)[0] for name in ATTACKS}
    with server_logs(caplog.handler, config):
        async with serve(create_app(config), **VERBOSE_SERVER) as addr:
            control = await first_message_auth(f"ws://{addr}/ws", valid(keys))
            outcomes = {
                name: await first_message_auth(f"ws://{addr}/ws", token)
                for name, token in tokens.items()
            }
    assert control.welcome is not None and control.welcome["user_id"] == "alice"
    assert wrong_outcomes(outcomes) == []
    secrets_ = [part for token in tokens.values() for part in token_parts(token)]
    assert leaks(caplog.records, *secrets_) == []


async def test_the_default_size_limit_refuses_a_validly_signed_9_kb_token(keys: Keys) -> None:
    config = rs256_config(keys)
    del config["auth"]["max_token_bytes"]
    config["server"] = {**config["server"], "first_message_auth": True}
    small, big = valid(keys, pad="x" * 4000), valid(keys, pad="x" * 6500)
    assert len(small) < 8192 < len(big)
    async with serve(create_app(config)) as addr:
        accepted = await first_message_auth(f"ws://{addr}/ws", small)
        refused = await first_message_auth(f"ws://{addr}/ws", big)
    assert accepted.welcome is not None and accepted.welcome["user_id"] == "alice"
    assert (refused.welcome, refused.code, refused.reason) == (None, 1008, INVALID)


# -- JWKS: a flood of random kids costs at most one fetch per cooldown --------------------------


def jwks_config(url: str, **overrides: Any) -> dict[str, Any]:
    return jwt_config(jwks_url=url, algorithms=["RS256"], **overrides)


async def flood(addr: str, tokens: list[str]) -> list[Outcome]:
    # Bounded concurrency: enough to overlap heavily without exhausting file descriptors.
    gate = asyncio.Semaphore(100)

    async def one(token: str) -> Outcome:
        async with gate:
            headers = {"Authorization": f"Bearer {token}"}
            return await attempt(f"ws://{addr}/ws", timeout=15, additional_headers=headers)

    return await asyncio.gather(*(one(token) for token in tokens))


def random_kid_tokens(key: Any, count: int) -> list[str]:
    # Genuinely signed by the published key: only the unknown kid is wrong.
    return [sign(key, "RS256", claims(), kid=secrets.token_hex(8)) for _ in range(count)]


def assert_all_refused(outcomes: list[Outcome]) -> None:
    accepted = [o for o in outcomes if o.welcome is not None]
    assert accepted == []
    assert {(o.code, o.reason) for o in outcomes} == {(1008, INVALID)}


async def test_random_kid_flood_within_the_cooldown_fetches_nothing(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = JWKSEndpoint(keys=[jwk_of(keys.server, "k1")])
    tokens = random_kid_tokens(keys.server, 200)
    async with serve(endpoint.app()) as jwks_addr:
        config = jwks_config(f"http://{jwks_addr}/jwks.json")
        with server_logs(caplog.handler, config):
            async with serve(create_app(config), **VERBOSE_SERVER) as addr:
                assert endpoint.requests == 1  # fetched at start-up
                good = sign(keys.server, "RS256", claims(), kid="k1")
                control = await flood(addr, [good])
                outcomes = await flood(addr, tokens)
    assert control[0].welcome is not None and control[0].welcome["user_id"] == "alice"
    assert_all_refused(outcomes)
    assert endpoint.requests <= 2  # the brief's bound; within the default 30 s cooldown: 1
    assert endpoint.requests == 1
    secrets_ = [part for token in tokens for part in token_parts(token)]
    assert leaks(caplog.records, *secrets_) == []


async def test_random_kid_flood_after_the_cooldown_fetches_once(keys: Keys) -> None:
    endpoint = JWKSEndpoint(keys=[jwk_of(keys.server, "k1")])
    cooldown = 1.5
    tokens = random_kid_tokens(keys.server, 200)
    async with serve(endpoint.app()) as jwks_addr:
        config = jwks_config(f"http://{jwks_addr}/jwks.json", jwks_refetch_cooldown=cooldown)
        async with serve(create_app(config)) as addr:
            await asyncio.sleep(cooldown + 0.1)
            started = time.monotonic()
            outcomes = await flood(addr, tokens)
            took = time.monotonic() - started
    assert_all_refused(outcomes)
    # One fetch at start-up, then one per cooldown the flood spans (one, unless the host is slow).
    assert endpoint.requests <= 2 + int(took // cooldown)
    assert endpoint.requests >= 2


async def test_a_rotated_key_is_fetched_once_the_cooldown_has_passed(keys: Keys) -> None:
    endpoint = JWKSEndpoint(keys=[jwk_of(keys.server, "k1")])
    cooldown = 1.0
    rotated = sign(keys.attacker, "RS256", claims(user="bob"), kid="k2")
    async with serve(endpoint.app()) as jwks_addr:
        config = jwks_config(f"http://{jwks_addr}/jwks.json", jwks_refetch_cooldown=cooldown)
        async with serve(create_app(config)) as addr:
            endpoint.keys.append(jwk_of(keys.attacker, "k2"))  # the issuer rotates keys
            early = (await flood(addr, [rotated]))[0]
            requests_early = endpoint.requests
            await asyncio.sleep(cooldown + 0.1)
            late = (await flood(addr, [rotated]))[0]
    assert (early.code, early.reason, requests_early) == (1008, INVALID, 1)
    assert late.welcome is not None and late.welcome["user_id"] == "bob"
    assert endpoint.requests == 2


async def test_a_failing_jwks_endpoint_is_not_hammered_and_recovers(keys: Keys) -> None:
    endpoint = JWKSEndpoint(keys=[jwk_of(keys.server, "k1")], status=503)
    cooldown = 1.0
    good = sign(keys.server, "RS256", claims(), kid="k1")
    async with serve(endpoint.app()) as jwks_addr:
        config = jwks_config(f"http://{jwks_addr}/jwks.json", jwks_refetch_cooldown=cooldown)
        started = time.monotonic()  # the start-up fetch comes after this
        async with serve(create_app(config)) as addr:  # starts although the JWKS is down
            outcomes = await flood(addr, [good] * 50)
            took = time.monotonic() - started
            requests_while_down = endpoint.requests
            endpoint.status = 200
            await asyncio.sleep(cooldown + 0.1)  # past the cooldown of the last attempt
            recovered = (await flood(addr, [good]))[0]
    assert_all_refused(outcomes)
    # The start-up fetch, then at most one per cooldown the flood spans (none, unless the
    # host is slow: a fetch attempt may come only a whole cooldown after the previous one).
    assert requests_while_down <= 1 + int(took // cooldown)
    assert recovered.welcome is not None and recovered.welcome["user_id"] == "alice"
