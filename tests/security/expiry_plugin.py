"""A test auth plugin whose tokens say what expiry the Identity carries, so that the host's
handling of any plugin's ``expires_at`` is tested, not only the jwt plugin's.

``user@<seconds>``: expires that many seconds from now; ``user@never``: ``expires_at=None``;
``user@nan`` / ``user@inf``: those floats; ``user@text``: the string ``"1764100000"``.
"""

from __future__ import annotations

import time
from typing import Any

from netrun_ws import Identity, hookimpl


def _expiry(spec: str) -> Any:
    special: dict[str, Any] = {
        "never": None,
        "nan": float("nan"),
        "inf": float("inf"),
        "text": "1764100000",
    }
    return special[spec] if spec in special else time.time() + float(spec)


@hookimpl
def verify_token(token: str) -> Identity | None:
    user, _, spec = token.partition("@")
    return Identity(user_id=user, expires_at=_expiry(spec or "never"))
