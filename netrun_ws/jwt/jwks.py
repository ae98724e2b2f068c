"""Verification keys from a JWKS URL (PyJWKClient), cached, with a refetch cooldown.

Decisions a caller must know:

* The key set is fetched with PyJWKClient (http/https only, no redirects) in a worker thread,
  so the event loop never blocks on the network. At most one fetch runs at a time.
* Keys are cached for ``cache_seconds``. A token whose ``kid`` is not in the cache triggers a
  refetch only if the last fetch ATTEMPT (successful or not) is at least ``refetch_cooldown``
  seconds old; otherwise it is refused without any network traffic. A flood of tokens with
  random ``kid`` values therefore costs at most one fetch per cooldown, and a JWKS endpoint that
  is down is not hammered either.
* A failed or unusable fetch keeps the previous keys (logged as a warning without any token
  text); a successful fetch replaces them, so a key removed upstream stops verifying.
* Only signing keys (``use`` absent or ``sig``) of the key type the algorithms need are kept
  (RSA for RS*/PS*, EC for ES*, OKP for EdDSA): a symmetric ``oct`` key in the set can never
  verify a token. A key that names an ``alg`` only verifies tokens of that ``alg``.
* A token without ``kid`` is verified with the only key when the set has exactly one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jwt
from jwt import PyJWK, PyJWKClient

from netrun_ws.auth import TokenPolicy, TokenValidationError

__all__ = ["JWKSKey", "JWKSKeys", "JWKSVerifier", "key_type_for"]

logger = logging.getLogger(__name__)

_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


def key_type_for(algorithm: str) -> str:
    """The JWK ``kty`` an asymmetric algorithm verifies with; ValueError for HS*/unknown."""
    kty = _KEY_TYPES.get(algorithm[:2])
    if kty is None:
        raise ValueError(f"{algorithm!r} cannot use JWKS keys (RS*, PS*, ES* or EdDSA only)")
    return kty


class JWKSKey(NamedTuple):
    """A published verification key; ``alg`` is the algorithm the JWK pins, if it names one."""

    key: Any
    alg: str | None


class JWKSKeys:
    """The signing keys published at ``url``, refreshed as described in the module docstring.

    ``fetches`` counts fetch attempts (for tests and metrics). ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        key_type: str,
        cache_seconds: float = 300.0,
        refetch_cooldown: float = 30.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            # PyJWKClient only fetches here; caching and the cooldown are ours (see module doc).
            self._client = PyJWKClient(url, cache_jwk_set=False, timeout=timeout)
        except jwt.PyJWKClientError as error:
            raise ValueError(f"jwks_url: {error}") from None
        self.url = url
        self.key_type = key_type
        self.cache_seconds = cache_seconds
        self.refetch_cooldown = refetch_cooldown
        self.fetches = 0
        self._clock = clock
        self._keys: dict[str | None, JWKSKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return (
            self._fetched_at is not None and self._clock() - self._fetched_at < self.cache_seconds
        )

    def _may_fetch(self) -> bool:
        return (
            self._attempted_at is None
            or self._clock() - self._attempted_at >= self.refetch_cooldown
        )

    def _lookup(self, kid: str | None) -> JWKSKey | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid) if kid is not None else None

    async def key_for(self, kid: str | None) -> JWKSKey | None:
        """The key for ``kid``, fetching the set first when allowed; None if there is none."""
        key = self._lookup(kid)
        if key is not None and self._fresh():
            return key
        async with self._lock:
            key = self._lookup(kid)  # another task may have fetched while this one waited
            if key is not None and self._fresh():
                return key
            if self._may_fetch():
                await self._fetch()
            return self._lookup(kid)  # stale keys still serve when the fetch failed

    async def refresh(self) -> bool:
        """Fetch now (start-up), unless one is running; True when usable keys are cached."""
        async with self._lock:
            await self._fetch()
        return bool(self._keys)

    async def _fetch(self) -> None:
        self._attempted_at = self._clock()
        self.fetches += 1
        try:
            data = await asyncio.to_thread(self._client.fetch_data)
            keys = self._usable_keys(data)
        except Exception as error:  # any failure keeps the previous keys
            logger.warning("JWKS fetch from %s failed (%s)", self.url, type(error).__name__)
            return
        if not keys:
            logger.warning("JWKS at %s has no usable %s signing keys", self.url, self.key_type)
            return
        self._keys = keys
        self._fetched_at = self._clock()

    def _usable_keys(self, data: Any) -> dict[str | None, JWKSKey]:
        entries = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ValueError("not a JWK Set")
        keys: dict[str | None, JWKSKey] = {}
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("kty") != self.key_type:
                continue
            if entry.get("use", "sig") != "sig":
                continue
            try:
                jwk = PyJWK(entry)
            except jwt.PyJWTError:
                continue  # an unusable entry must not hide the good ones
            alg = entry.get("alg")
            keys[jwk.key_id] = JWKSKey(jwk.key, alg if isinstance(alg, str) else None)
        return keys


class JWKSVerifier:
    """Verifies tokens with ``policy`` and the key their ``kid`` names in ``keys``."""

    def __init__(self, policy: TokenPolicy, keys: JWKSKeys) -> None:
        self.policy = policy
        self.keys = keys

    async def claims(self, token: str) -> dict[str, Any]:
        """The verified claims, or TokenValidationError (an unknown ``kid`` is invalid_token)."""
        header = self.policy.header(token)  # cheap checks before any lookup or fetch
        key = await self.keys.key_for(header.get("kid"))
        if key is None:
            raise TokenValidationError("invalid_token")
        if key.alg is not None and key.alg != header["alg"]:
            raise TokenValidationError("invalid_token")
        return self.policy.claims(token, key.key)
