"""Hide secrets before a config is printed (``netrun-ws check``) or logged.

A value is secret when its key's name looks secret (``secret``, ``password``, ``token``, ... or a
name ending in one of them, such as ``jwt_secret`` or ``redisPassword``), and a URL's password
(``redis://:pw@host/0``) is always hidden, whatever its key.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from netrun_ws._masking import MASK as MASK
from netrun_ws._masking import mask_url as mask_url

SECRET_WORDS: frozenset[str] = frozenset(
    {
        "secret",
        "password",
        "passwd",
        "token",
        "api_key",
        "apikey",
        "key",
        "private_key",
        "credentials",
        "authorization",
    }
)

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_T = TypeVar("_T")


def _snake(name: str) -> str:
    return _CAMEL_BOUNDARY.sub("_", name).lower().replace("-", "_")


def is_secret_key(name: object) -> bool:
    """True if a key named ``name`` holds a secret: a secret word, or ``<anything>_<word>``.

    Matching is case-insensitive and treats camelCase and dashes like underscores, so
    ``jwt_secret``, ``JWT-Secret`` and ``jwtSecret`` are secret while ``token_expiry_seconds``
    and ``key_prefix`` are not.
    """
    if not isinstance(name, str):
        return False
    snake = _snake(name)
    return any(snake == word or snake.endswith("_" + word) for word in SECRET_WORDS)


def mask_secrets(data: _T) -> _T:
    """Return a deep copy of ``data`` with secret values replaced by ``"***"``.

    Mappings, lists and tuples are walked; a non-null value under a secret-looking key becomes
    ``"***"`` (whole, even if it is a mapping); every string has its URL password masked.
    """
    return _mask(data)  # type: ignore[no-any-return]


def _mask(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            key: MASK if is_secret_key(key) and item is not None else _mask(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_mask(item) for item in value)
    if isinstance(value, str):
        return mask_url(value)
    return copy.deepcopy(value)
