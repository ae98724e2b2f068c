"""netrun_ws._upstream.pyjwt: netrun-ws's segment check decides exactly as PyJWT's own check
does and PyJWT's decoder calls it; an HS* secret is not checked again on every decode."""

from __future__ import annotations

import base64
import itertools
import random
import time
from typing import Any

import jwt
import pytest
from jwt.algorithms import HMACAlgorithm
from jwt.api_jws import PyJWS
from jwt.exceptions import DecodeError

from netrun_ws._upstream import pyjwt as fence
from netrun_ws._upstream.pyjwt import SegmentCheckedPyJWT
from netrun_ws.auth import JWTAuthService, TokenPolicy, TokenValidationError
from netrun_ws.jwt import jws_segments
from netrun_ws.jwt.jws_segments import decode_segment
from tests.upstream import decide_afresh

SECRET = "segment-tests-secret-0123456789-abcdef"


def test_the_fence_is_open_for_the_installed_pyjwt() -> None:
    assert fence.refusal() is None
    assert isinstance(jws_segments.decoder(), SegmentCheckedPyJWT)


def _outcome(check: object, segment: bytes) -> tuple[str, object]:
    try:
        return "ok", check(segment, "payload")  # type: ignore[operator]
    except DecodeError as error:
        return "error", str(error)


def _assert_same(segment: bytes) -> None:
    ours = _outcome(decode_segment, segment)
    pyjwt = _outcome(PyJWS._decode_base64url_segment, segment)
    assert ours == pyjwt, segment


def test_every_short_segment_over_a_mixed_alphabet() -> None:
    # Canonical and non-canonical last characters (A/B/Q/g, w/_), padding, a character outside
    # the alphabet and the standard-alphabet characters that base64url must refuse.
    symbols = b"ABQgw_-=+/!"
    for length in range(6):
        for combination in itertools.product(symbols, repeat=length):
            _assert_same(bytes(combination))


def test_random_segments() -> None:
    chooser = random.Random(20261126)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for _ in range(20_000):
        length = chooser.randrange(0, 40)
        data = bytearray(chooser.choice(alphabet) for _ in range(length))
        if data and chooser.random() < 0.2:  # one stray byte somewhere
            data[chooser.randrange(len(data))] = chooser.randrange(256)
        data += b"=" * chooser.choice((0, 0, 0, 1, 2, 3))
        _assert_same(bytes(data))


@pytest.mark.parametrize("payload", [b"", b"x", b"xy", b"xyz", bytes(range(256))])
def test_round_trip(payload: bytes) -> None:
    segment = base64.urlsafe_b64encode(payload).rstrip(b"=")
    assert decode_segment(segment, "payload") == payload
    padded = base64.urlsafe_b64encode(payload)
    assert decode_segment(padded, "payload") == payload
    _assert_same(segment)
    _assert_same(padded)


def test_decoder_uses_the_c_segment_check(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(segment: bytes, name: str) -> bytes:
        calls.append(name)
        return decode_segment(segment, name)

    monkeypatch.setattr(
        fence._SegmentCheckedPyJWS, "_decode_base64url_segment", staticmethod(counting)
    )
    decoder = SegmentCheckedPyJWT()
    token = jwt.encode({"user_id": "u1"}, SECRET, algorithm="HS256")
    assert decoder.decode(token, SECRET, algorithms=["HS256"]) == {"user_id": "u1"}
    assert calls == ["header", "payload", "crypto"]


@pytest.mark.usefixtures("pyjwt_fence")
def test_decoder_still_refuses_what_pyjwt_refuses() -> None:
    decoder = jws_segments.decoder()  # and plain jwt.PyJWT where the fence is shut
    token = jwt.encode({"user_id": "u1"}, SECRET, algorithm="HS256")
    header, payload, signature = token.split(".")
    with pytest.raises(jwt.InvalidSignatureError):
        decoder.decode(f"{header}.{payload}.{signature[::-1]}", SECRET, algorithms=["HS256"])
    with pytest.raises(jwt.DecodeError):
        decoder.decode(f"{header}.{payload}!.{signature}", SECRET, algorithms=["HS256"])
    with pytest.raises(jwt.InvalidAlgorithmError):
        decoder.decode(token, SECRET, algorithms=["HS384"])


def test_token_policy_decodes_through_the_c_check(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = jws_segments.decode_segment

    def counting(segment: bytes, name: str) -> bytes:
        calls.append(name)
        return original(segment, name)

    monkeypatch.setattr(
        fence._SegmentCheckedPyJWS, "_decode_base64url_segment", staticmethod(counting)
    )
    service = JWTAuthService(SECRET, token_expiry_seconds=60)
    assert service.validate_token(service.generate_token("u1")) is not None
    assert calls == ["header", "payload", "crypto"]
    policy = TokenPolicy(algorithms=("HS256",))
    with pytest.raises(TokenValidationError):
        policy.claims(service.generate_token("u1")[:-3] + "AAA", SECRET)


def test_the_fence_refuses_a_pyjwt_whose_segment_check_decides_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PyJWT 2.15.0 refused padded segments, which 2.15.1 (and decode_segment) accept.
    def refusing_padding(segment: bytes, name: str) -> bytes:
        if segment.endswith(b"="):
            raise DecodeError(f"Invalid {name} padding")
        return decode_segment(segment, name)

    assert fence.refusal() is None
    monkeypatch.setattr(PyJWS, "_decode_base64url_segment", staticmethod(refusing_padding))
    assert fence.refusal() == "PyJWT's segment check decides b'eA==' differently"


def test_the_fence_refuses_a_pyjwt_without_the_names_it_uses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(PyJWS, "_decode_base64url_segment")
    assert decide_afresh("pyjwt") == "PyJWT has no PyJWS._decode_base64url_segment"
    monkeypatch.undo()
    monkeypatch.delattr(jwt.PyJWT, "_get_sig_options")
    assert decide_afresh("pyjwt") == (
        "AttributeError: 'PyJWT' object has no attribute '_get_sig_options'"
    )


# -- HS* secrets checked once (netrun_ws.jwt.hmac_keys) ---------------------------------------

HS_SECRET = "a-checked-secret-long-enough-for-hs512-" + "x" * 40


def test_decoding_does_not_recheck_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    service = JWTAuthService(HS_SECRET, algorithms=["HS256", "HS384", "HS512"])
    claims = {"sub": "u1", "exp": int(time.time()) + 60}
    tokens = [jwt.encode(claims, HS_SECRET, algorithm=name) for name in ("HS256", "HS384", "HS512")]
    checks: list[object] = []
    full_check = HMACAlgorithm.prepare_key

    def counted(self: HMACAlgorithm, key: str | bytes) -> bytes:
        checks.append(key)
        return full_check(self, key)

    monkeypatch.setattr(HMACAlgorithm, "prepare_key", counted)
    for token in tokens:
        assert service.validate_token_or_raise(token)["sub"] == "u1"
    assert checks == []


def test_the_fence_refuses_a_pyjwk_without_pyjwts_hmac_algorithm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def without_hash(self: HMACAlgorithm, hash_alg: Any) -> None:
        pass  # an HMACAlgorithm that keeps its hash elsewhere

    monkeypatch.setattr(HMACAlgorithm, "__init__", without_hash)
    assert fence.refusal() == "PyJWT's HS256 PyJWK has no HMACAlgorithm with its hash_alg"
