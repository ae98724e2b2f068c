"""netrun_ws.jwt.jws_segments: the C segment check decides exactly as PyJWT's own check does."""

from __future__ import annotations

import base64
import itertools
import random

import jwt
import pytest
from jwt.api_jws import PyJWS
from jwt.exceptions import DecodeError

from netrun_ws.auth import JWTAuthService, TokenPolicy, TokenValidationError
from netrun_ws.jwt import jws_segments
from netrun_ws.jwt.jws_segments import SegmentCheckedPyJWT, decode_segment

SECRET = "segment-tests-secret-0123456789-abcdef"


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
        jws_segments._SegmentCheckedPyJWS, "_decode_base64url_segment", staticmethod(counting)
    )
    decoder = SegmentCheckedPyJWT()
    token = jwt.encode({"user_id": "u1"}, SECRET, algorithm="HS256")
    assert decoder.decode(token, SECRET, algorithms=["HS256"]) == {"user_id": "u1"}
    assert calls == ["header", "payload", "crypto"]


def test_decoder_still_refuses_what_pyjwt_refuses() -> None:
    decoder = SegmentCheckedPyJWT()
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
        jws_segments._SegmentCheckedPyJWS, "_decode_base64url_segment", staticmethod(counting)
    )
    service = JWTAuthService(SECRET, token_expiry_seconds=60)
    assert service.validate_token(service.generate_token("u1")) is not None
    assert calls == ["header", "payload", "crypto"]
    policy = TokenPolicy(algorithms=("HS256",))
    with pytest.raises(TokenValidationError):
        policy.claims(service.generate_token("u1")[:-3] + "AAA", SECRET)
