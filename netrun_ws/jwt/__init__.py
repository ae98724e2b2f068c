"""JWT support for :class:`netrun_ws.auth.JWTAuthService` and the ``jwt`` auth plugin.

Needs the ``auth`` extra (PyJWT). :mod:`netrun_ws.jwt.jwks` fetches and caches a JWKS endpoint's
keys; :mod:`netrun_ws.jwt.hmac_keys` checks an HS* secret once instead of on every decode.
"""

from __future__ import annotations

__all__: list[str] = []
