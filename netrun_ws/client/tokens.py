"""When to ask the app for a new token: read a JWT's ``exp`` (unverified: the server verifies)."""

from __future__ import annotations

import base64
import binascii
import json
import math


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT as a unix time, None when ``token`` is not a JWT with one."""
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > 16_384:
        return None
    segment = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(segment))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        return None
    return float(exp)


def refresh_delay(expires_at: float, now: float, margin: float) -> float:
    """Seconds from ``now`` until a token expiring at ``expires_at`` should be refreshed.

    ``margin`` seconds before expiry, but not before half the remaining time has passed: a token
    that lives less than ``2 * margin`` is refreshed halfway, not at once (a refresh that returns
    another short token must not turn into a tight loop). Never negative.
    """
    remaining = expires_at - now
    return max(0.0, remaining - margin, remaining / 2)
