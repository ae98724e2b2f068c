"""HS* verification keys whose secret PyJWT checks once, not on every decode.

PyJWT's ``HMACAlgorithm.prepare_key`` refuses secrets that look like asymmetric keys (PEM, SSH,
DER, JWK JSON) - the defence against algorithm confusion. It runs on every ``jwt.decode``, and
for a server that verifies one token per connection it was about a tenth of the CPU a
connection costs, spent re-checking the same configured bytes.

``CheckedHMACKeys`` runs those checks once, with PyJWT's own ``prepare_key``, when the keys are
built, and hands ``jwt.decode`` a ``PyJWK`` per HS algorithm whose algorithm object skips the
re-check only for that exact, already-checked bytes object. Everything else in the decode is
PyJWT's: the allowlist, the ``alg`` must equal the key's algorithm, the key-length rule, the
constant-time signature comparison and every claim check. If a PyJWT release stops using the
key's algorithm object, decoding stays correct and merely re-checks the key again.
"""

from __future__ import annotations

import base64
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm

__all__ = ["CheckedHMACKeys"]

_HS_ALGORITHMS = ("HS256", "HS384", "HS512")


class _PrecheckedHMAC(HMACAlgorithm):
    """PyJWT's HMAC algorithm for one secret that already passed ``prepare_key``."""

    def __init__(self, hash_alg: Any, secret: bytes) -> None:
        super().__init__(hash_alg)
        self.secret: bytes = super().prepare_key(secret)

    def prepare_key(self, key: str | bytes) -> bytes:
        if key is self.secret:
            return self.secret
        return super().prepare_key(key)


class CheckedHMACKeys:
    """One checked secret, as the ``PyJWK`` that ``jwt.decode`` wants for each HS algorithm.

    Raises ``jwt.InvalidKeyError`` (from PyJWT) for a secret PyJWT would refuse.
    """

    __slots__ = ("_keys",)

    def __init__(self, secret: bytes) -> None:
        encoded = base64.urlsafe_b64encode(secret).rstrip(b"=").decode("ascii")
        self._keys: dict[str, jwt.PyJWK] = {}
        for name in _HS_ALGORITHMS:
            key = jwt.PyJWK({"kty": "oct", "k": encoded}, algorithm=name)
            chosen = key.Algorithm  # PyJWT's own HMAC algorithm for the name: reuse its hash
            assert isinstance(chosen, HMACAlgorithm)
            checked = _PrecheckedHMAC(chosen.hash_alg, secret)
            key.Algorithm = checked
            key.key = checked.secret
            self._keys[name] = key

    def for_algorithm(self, name: str) -> jwt.PyJWK | None:
        """The key for the token header's ``alg``; None when it is not an HS algorithm."""
        return self._keys.get(name)
