"""JWT support for :class:`netrun_ws.auth.JWTAuthService` and the ``jwt`` auth plugin.

Needs the ``auth`` extra (PyJWT). Its public names are the JWKS ones: :class:`JWKSKeys` fetches and
caches a JWKS endpoint's keys, :class:`JWKSVerifier` checks tokens against them. The modules inside
are internals (``hmac_keys`` checks an HS* secret once instead of on every decode).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netrun_ws.jwt.jwks import JWKSKey, JWKSKeys, JWKSVerifier, key_type_for

__all__ = ["JWKSKey", "JWKSKeys", "JWKSVerifier", "key_type_for"]


def __getattr__(name: str) -> object:
    # Imported on first use: netrun_ws.auth imports this package's modules while it is itself
    # being imported, and jwks imports netrun_ws.auth back.
    if name in __all__:
        return getattr(importlib.import_module("netrun_ws.jwt.jwks"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
