"""JWT support for :class:`netrun_ws.auth.JWTAuthService` and the ``jwt`` auth plugin.

Needs the ``auth`` extra (PyJWT). Its public names: :class:`JWKSKeys` fetches and caches a JWKS
endpoint's keys, :class:`JWKSVerifier` checks tokens against them, and
:func:`pyjwt_internals_usable` says whether the faster checks built on PyJWT internals run here.
The modules inside are internals (``hmac_keys`` checks an HS* secret once instead of on every
decode, ``jws_segments`` checks a token's base64url segments in C).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from netrun_ws._upstream import usable

if TYPE_CHECKING:
    from netrun_ws.jwt.jwks import JWKSKey, JWKSKeys, JWKSVerifier, key_type_for

__all__ = ["JWKSKey", "JWKSKeys", "JWKSVerifier", "key_type_for", "pyjwt_internals_usable"]

_JWKS_NAMES = ("JWKSKey", "JWKSKeys", "JWKSVerifier", "key_type_for")


def pyjwt_internals_usable() -> bool:
    """Whether the faster checks built on PyJWT internals (:mod:`netrun_ws._upstream.pyjwt`) may
    run here. If not, PyJWT's own checks run (the same decisions, slower) and a warning says so
    once."""
    return usable("JWT verification", "pyjwt", instead="PyJWT's own segment and secret checks")


def __getattr__(name: str) -> object:
    # Imported on first use: netrun_ws.auth imports this package's modules while it is itself
    # being imported, and jwks imports netrun_ws.auth back.
    if name in _JWKS_NAMES:
        return getattr(importlib.import_module("netrun_ws.jwt.jwks"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
