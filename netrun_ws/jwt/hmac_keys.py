"""HS* verification keys whose secret PyJWT checks once, not on every decode.

PyJWT's ``HMACAlgorithm.prepare_key`` refuses secrets that look like asymmetric keys (PEM, SSH,
DER, JWK JSON) - the defence against algorithm confusion. It runs on every ``jwt.decode``, and
for a server that verifies one token per connection it was about a tenth of the CPU a
connection costs, spent re-checking the same configured bytes.

``CheckedHMACKeys`` runs those checks once, with PyJWT's own ``prepare_key``, when the keys are
built, and hands ``jwt.decode`` a ``PyJWK`` per HS algorithm whose algorithm object skips the
re-check only for that exact, already-checked bytes object
(:func:`netrun_ws._upstream.pyjwt.precheck_hmac_key`, built on PyJWT internals). Everything else
in the decode is PyJWT's: the allowlist, the ``alg`` must equal the key's algorithm, the
key-length rule, the constant-time signature comparison and every claim check. Where that fence
is shut (an untested PyJWT), the keys are plain ``PyJWK`` objects and PyJWT re-checks the secret
on every decode, as it does by itself.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import jwt

from netrun_ws.jwt import pyjwt_internals_usable

__all__ = ["CheckedHMACKeys"]

_HS_ALGORITHMS = ("HS256", "HS384", "HS512")


class CheckedHMACKeys:
    """One checked secret, as the ``PyJWK`` that ``jwt.decode`` wants for each HS algorithm.

    Raises ``jwt.InvalidKeyError`` (from PyJWT) for a secret PyJWT would refuse.
    """

    __slots__ = ("_keys",)

    def __init__(self, secret: bytes) -> None:
        encoded = base64.urlsafe_b64encode(secret).rstrip(b"=").decode("ascii")
        self._keys: dict[str, jwt.PyJWK] = {}
        check = _secret_check()
        for name in _HS_ALGORITHMS:
            key = jwt.PyJWK({"kty": "oct", "k": encoded}, algorithm=name)
            check(key, secret)
            self._keys[name] = key

    def for_algorithm(self, name: str) -> jwt.PyJWK | None:
        """The key for the token header's ``alg``; None when it is not an HS algorithm."""
        return self._keys.get(name)


def _secret_check() -> Callable[[jwt.PyJWK, bytes], None]:
    if pyjwt_internals_usable():
        from netrun_ws._upstream.pyjwt import precheck_hmac_key

        return precheck_hmac_key
    return _check_only


def _check_only(key: jwt.PyJWK, secret: bytes) -> None:
    """PyJWT's check of the secret, now rather than at the first decode; ``key`` is left as
    PyJWT made it, and PyJWT checks the secret again on every decode."""
    jwt.get_algorithm_by_name(key.algorithm_name).prepare_key(secret)
