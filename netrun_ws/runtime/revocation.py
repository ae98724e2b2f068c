"""Revocation that lasts: a revoked user or token stays refused on every node.

A revocation is an entry in the store (so every node sharing it sees it), kept for as long as it
can matter:

- a **user** revocation (``host.revoke_user``, ``POST <api_prefix>/revoke {"user": ID}``) refuses
  every credential of that user issued at or before the revocation: a token whose ``iat`` is not
  later than the revocation time, or that has no ``iat``. Tokens issued afterwards are accepted,
  so the user can log in again. The entry lives ``server.revocation_ttl`` seconds (set it to at
  least your longest token lifetime);
- a **token** revocation (``{"token": JWT}`` or ``{"jti": ID}``) refuses that one token until its
  own ``exp`` (``server.revocation_ttl`` when it has none). A token is known by its ``jti`` claim,
  else by a digest of all its claims (the same claims signed by the same key are the same grant).

Admission asks the store once per connection for both entries; a refresh with a revoked token is
refused like an invalid one.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, overload

from netrun_ws.identity import Identity
from netrun_ws.store import RevocationCheck, revocation_refuses

if TYPE_CHECKING:
    from netrun_ws.host import Host

#: The public reason of a refusal (HTTP 403 body, close reason, refresh error).
REVOKED = "revoked"
#: How long a node remembers the revocations it closed connections for: longer than any
#: admission can take between its revocation check and its registration.
RECENT_SECONDS = 300.0


#: The claims' canonical JSON (the same text on every node); built once, it runs on every connect.
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=repr).encode


def user_subject(user_id: str) -> str:
    return f"user:{user_id}"


def token_subject(token_id: str) -> str:
    return f"token:{token_id}"


def token_id(identity: Identity) -> str | None:
    """What names the token behind ``identity``: ``jti:<jti>``, else ``claims:<sha256>`` of its
    claims; None for an identity without claims (an auth plugin that is not token based)."""
    claims = identity.claims
    if not claims:
        return None
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        return f"jti:{jti}"
    return f"claims:{hashlib.sha256(_canonical(claims).encode()).hexdigest()}"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


class Revocations:
    """Records revocations in the host's store and checks identities against them."""

    def __init__(self, host: Host) -> None:
        self._host = host
        # subject -> time.monotonic() when this node closed connections for its revocation: an
        # admission that passed its check just before a revocation and registered just after
        # its close is caught here, without another store call.
        self._recent: dict[str, float] = {}

    @property
    def ttl(self) -> float:
        return self._host.config.server.revocation_ttl

    async def revoke_user(self, user_id: str) -> None:
        """Refuse every credential of ``user_id`` issued up to now."""
        now = time.time()
        await self._host.store.revoke(user_subject(user_id), now, now + self.ttl)

    async def revoke_token(self, token: str, expires_at: float | None) -> None:
        """Refuse the token named ``token`` (see :func:`token_id`) until ``expires_at``."""
        now = time.time()
        until = expires_at if expires_at is not None else now + self.ttl
        if until > now:  # an expired token is refused anyway
            await self._host.store.revoke(token_subject(token), now, until)

    async def revoked(self, identity: Identity) -> bool:
        """Whether ``identity``'s user or token is revoked (one store call)."""
        checks = self.checks(identity)
        times = await self._host.store.revoked([subject for subject, _ in checks])
        return revocation_refuses(checks, times)

    @staticmethod
    def checks(identity: Identity) -> list[RevocationCheck]:
        """What refuses ``identity``: its user revoked at or after its ``iat`` (whenever, for a
        token without one), its token revoked at all."""
        checks: list[RevocationCheck] = [
            (user_subject(identity.user_id), _number(identity.claims.get("iat")))
        ]
        token = token_id(identity)
        if token is not None:
            checks.append((token_subject(token), None))
        return checks

    @staticmethod
    def checks_when_read(identity: Identity) -> Sequence[RevocationCheck]:
        """:meth:`checks`, worked out when first read: a store with no revocation recorded need
        not read them, and then the token's digest is never made (a canonical JSON encoding and
        a SHA-256 at every connect)."""
        return _ChecksWhenRead(identity)

    def closing(self, subject: str) -> None:
        """This node is closing the connections of a revocation of ``subject`` (delivery)."""
        now = time.monotonic()
        if len(self._recent) > 1000:
            self._recent = {
                key: at for key, at in self._recent.items() if now - at < RECENT_SECONDS
            }
        self._recent[subject] = now

    def revoked_since(self, identity: Identity, checked_at: float) -> bool:
        """Whether a revocation this node closed connections for, at or after ``checked_at``
        (``time.monotonic()`` when the admission asked the store), covers ``identity``. No store
        call: checked once a connection is registered. Later admissions asked the store, which
        is the authority (and knows when a revocation ends)."""
        if not self._recent:
            return False
        checks = self.checks(identity)
        seen = [self._recent.get(subject) for subject, _ in checks]
        # The iat rule compares with wall-clock time: any revocation seen here is newer than
        # every credential issued before the admission began.
        now = time.time()
        times = [now if at is not None and at >= checked_at else None for at in seen]
        return revocation_refuses(checks, times)


class _ChecksWhenRead(Sequence[RevocationCheck]):
    """``Revocations.checks(identity)``, made at the first read and kept."""

    __slots__ = ("_checks", "_identity")

    def __init__(self, identity: Identity) -> None:
        self._identity = identity
        self._checks: list[RevocationCheck] | None = None

    def _read(self) -> list[RevocationCheck]:
        if self._checks is None:
            self._checks = Revocations.checks(self._identity)
        return self._checks

    @overload
    def __getitem__(self, index: int) -> RevocationCheck: ...
    @overload
    def __getitem__(self, index: slice) -> list[RevocationCheck]: ...
    def __getitem__(self, index: int | slice) -> RevocationCheck | list[RevocationCheck]:
        return self._read()[index]

    def __len__(self) -> int:
        return len(self._read())

    def __iter__(self) -> Iterator[RevocationCheck]:
        return iter(self._read())
