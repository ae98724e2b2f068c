"""``Envelope``, ``Position`` and ``PublishResult`` built for the per-message path, cheaply.

They are frozen dataclasses, whose ``__init__`` sets each field through
``object.__setattr__`` (about 1,900 CPU instructions a field on CPython 3.11: an ``Envelope``
costs 11,000, as much as decoding its bus header). Here each is filled in as a plain object with
the same ``__slots__``, then given its class (``__class__`` assignment, allowed between classes
of the same slot layout): 3,000 for an ``Envelope``. What comes out is an instance of the real
class, equal to what the constructor makes, as frozen.

If the running Python refuses the class assignment (checked once at import, against the
constructor), the builders are the constructors themselves.
"""

from __future__ import annotations

from netrun_ws.store import Envelope, EnvelopeKind, Position, PublishResult
from netrun_ws.wire import Frame

__all__ = ["envelope", "position", "publish_result"]

_NOBODY: frozenset[str] = frozenset()


class _EnvelopeFields:
    __slots__ = ("exclude_connections", "exclude_users", "kind", "payload", "pos", "target")
    kind: EnvelopeKind
    target: str | None
    payload: Frame
    exclude_users: frozenset[str]
    exclude_connections: frozenset[str]
    pos: Position | None


class _PositionFields:
    __slots__ = ("epoch", "offset")
    offset: int
    epoch: str


class _PublishResultFields:
    __slots__ = ("local", "remote_nodes")
    local: int
    remote_nodes: int


def envelope(
    kind: EnvelopeKind,
    target: str | None,
    payload: Frame,
    exclude_users: frozenset[str] = _NOBODY,
    exclude_connections: frozenset[str] = _NOBODY,
    pos: Position | None = None,
) -> Envelope:
    record = _EnvelopeFields()
    record.kind = kind
    record.target = target
    record.payload = payload
    record.exclude_users = exclude_users
    record.exclude_connections = exclude_connections
    record.pos = pos
    record.__class__ = Envelope  # type: ignore[assignment]
    return record  # type: ignore[return-value]


def position(offset: int, epoch: str) -> Position:
    record = _PositionFields()
    record.offset = offset
    record.epoch = epoch
    record.__class__ = Position  # type: ignore[assignment]
    return record  # type: ignore[return-value]


def publish_result(local: int, remote_nodes: int = 0) -> PublishResult:
    record = _PublishResultFields()
    record.local = local
    record.remote_nodes = remote_nodes
    record.__class__ = PublishResult  # type: ignore[assignment]
    return record  # type: ignore[return-value]


def _builds_alike() -> bool:
    """True if the builders make what the constructors make (same slots, class accepted)."""
    pairs: list[tuple[type, type]] = [
        (_EnvelopeFields, Envelope),
        (_PositionFields, Position),
        (_PublishResultFields, PublishResult),
    ]
    if any(
        sorted(vars(fields)["__slots__"]) != sorted(vars(real)["__slots__"])
        for fields, real in pairs
    ):
        return False
    try:
        at = position(3, "e")
        built = [envelope("user", "u", "{}", frozenset({"x"}), _NOBODY, at), at]
        built.append(publish_result(1, 2))
    except TypeError:  # "__class__ assignment: ... object layout differs"
        return False
    made = [
        Envelope("user", "u", "{}", frozenset({"x"}), frozenset(), Position(3, "e")),
        Position(3, "e"),
        PublishResult(1, 2),
    ]
    return built == made and [type(item) for item in built] == [type(item) for item in made]


if not _builds_alike():  # pragma: no cover - a Python without that class assignment
    envelope = Envelope  # the same arguments
    position = Position
    publish_result = PublishResult
