"""JWT support for :class:`netrun_ws.auth.JWTAuthService` and the ``jwt`` auth plugin.

Needs the ``auth`` extra (PyJWT). :mod:`netrun_ws.jwt.jwks` fetches and caches a JWKS endpoint's
keys; :mod:`netrun_ws.jwt.hmac_keys` checks an HS* secret once instead of on every decode;
:mod:`netrun_ws.jwt.jws_segments` checks a token's base64url segments in C.
"""

from __future__ import annotations

from netrun_ws._upstream import usable

__all__ = ["pyjwt_internals_usable"]


def pyjwt_internals_usable() -> bool:
    """Whether the faster checks built on PyJWT internals (:mod:`netrun_ws._upstream.pyjwt`) may
    run here. If not, PyJWT's own checks run (the same decisions, slower) and a warning says so
    once."""
    return usable("JWT verification", "pyjwt", instead="PyJWT's own segment and secret checks")
