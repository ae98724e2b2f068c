"""PyJWT internals that netrun-ws's JWT verification (netrun_ws.auth, netrun_ws.jwt) uses.

Tested with PyJWT 2.15.1 (:data:`TESTED`). Two checks PyJWT repeats on every ``jwt.decode``
run faster here; everything else in a decode is PyJWT's own:

- :class:`SegmentCheckedPyJWT` is ``jwt.PyJWT`` whose base64url segment check is
  :func:`netrun_ws.jwt.jws_segments.decode_segment`, a regex and ``binascii`` instead of a
  Python loop. It relies on ``PyJWT.__init__`` keeping its ``PyJWS`` as ``self._jws``, built
  from ``self._get_sig_options()``, and on ``PyJWS`` checking each segment with
  ``self._decode_base64url_segment(segment, name)``, whose decisions ``decode_segment``
  repeats (2.15.1 accepts ``=`` padding; 2.15.0 refused it).
- :func:`precheck_hmac_key` lets the ``PyJWK`` of an HS* secret skip PyJWT's check of that
  secret (not a PEM/SSH/DER/JWK key), which then runs once. It relies on ``jwt.decode``
  verifying with ``key.Algorithm.prepare_key(key.key)`` for a ``PyJWK``, and on
  ``HMACAlgorithm.hash_alg``.

If a release stops calling either, decoding stays correct and runs PyJWT's own check again.
:func:`refusal` checks the release, the names, and that ``decode_segment`` decides as PyJWT's
check on a few segments; tests/upstream/test_pyjwt.py compares the two over many.
"""

from __future__ import annotations

from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm
from jwt.api_jws import PyJWS
from jwt.exceptions import DecodeError

from netrun_ws._upstream import ReleaseRange
from netrun_ws.jwt.jws_segments import decode_segment

__all__ = ["TESTED", "SegmentCheckedPyJWT", "precheck_hmac_key", "refusal"]

TESTED = ReleaseRange("PyJWT", (2, 15, 1), (2, 16))

#: Segments on which decode_segment and PyJWT's check must decide alike: padding, lengths,
#: non-canonical last characters, characters outside the alphabet.
_PROBES = b" e eA eB eA= eA== eA=== eHk eHl eHk= AAA= AAAA = e! e+/A e-_A eA=A".split(b" ")


class _SegmentCheckedPyJWS(PyJWS):
    _decode_base64url_segment = staticmethod(decode_segment)


class SegmentCheckedPyJWT(jwt.PyJWT):
    """``jwt.PyJWT`` whose segments are checked by ``decode_segment``."""

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._jws = _SegmentCheckedPyJWS(options=self._get_sig_options())


class _PrecheckedHMAC(HMACAlgorithm):
    """PyJWT's HMAC algorithm for one secret that already passed ``prepare_key``."""

    def __init__(self, hash_alg: Any, secret: bytes) -> None:
        super().__init__(hash_alg)
        self.secret: bytes = super().prepare_key(secret)

    def prepare_key(self, key: str | bytes) -> bytes:
        if key is self.secret:
            return self.secret
        return super().prepare_key(key)


def precheck_hmac_key(key: jwt.PyJWK, secret: bytes) -> None:
    """Check ``secret`` now with PyJWT's own ``prepare_key`` (``jwt.InvalidKeyError`` if PyJWT
    would refuse it) and make ``key``, its HS* ``PyJWK``, skip that check on every decode."""
    chosen = key.Algorithm  # PyJWT's own HMAC algorithm for the name: reuse its hash
    assert isinstance(chosen, HMACAlgorithm)
    checked = _PrecheckedHMAC(chosen.hash_alg, secret)
    key.Algorithm = checked
    key.key = checked.secret


def _outcome(check: Any, segment: bytes) -> object:
    try:
        return check(segment, "probe")
    except DecodeError as error:
        return str(error)


def refusal() -> str | None:
    """Why this PyJWT is not the one netrun-ws's checks were built on, or None."""
    if reason := TESTED.refusal():
        return reason
    if not isinstance(getattr(jwt.PyJWT(), "_jws", None), PyJWS):
        return "PyJWT's PyJWT keeps no PyJWS as _jws"
    if not callable(getattr(jwt.PyJWT, "_get_sig_options", None)):
        return "PyJWT has no PyJWT._get_sig_options"
    key = jwt.PyJWK({"kty": "oct", "k": "cHJvYmU"}, algorithm="HS256")
    if getattr(key.Algorithm, "hash_alg", None) is not HMACAlgorithm.SHA256:
        return "PyJWT's HS256 PyJWK has no HMACAlgorithm with its hash_alg"
    theirs = getattr(PyJWS, "_decode_base64url_segment", None)
    if not callable(theirs):
        return "PyJWT has no PyJWS._decode_base64url_segment"
    for segment in _PROBES:
        if _outcome(decode_segment, segment) != _outcome(theirs, segment):
            return f"PyJWT's segment check decides {segment!r} differently"
    return None
