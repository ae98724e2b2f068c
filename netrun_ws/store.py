"""The interface a ``store`` slot plugin provides: sessions, presence, limits and a message broker.

The host never talks to memory or Redis directly. It asks the store to ``publish`` an ``Envelope``;
the store delivers it to this node's connections at once (``deliver``) and, for a cluster store,
sends it ONCE to the other nodes, each of which hands it to its own ``deliver``. So swapping
``store: {plugin: memory}`` for ``store: {plugin: redis}`` changes nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from netrun_ws.config import HistoryConfig
from netrun_ws.session import WebSocketSessionManager
from netrun_ws.wire import Frame

__all__ = [
    "ConnectionRecords",
    "Deliver",
    "DeliveryGap",
    "Envelope",
    "EnvelopeKind",
    "GapCallback",
    "HasLocalRecipients",
    "HistoryRead",
    "HistoryStatus",
    "HistoryStore",
    "LocalRecipientStore",
    "OpenRefusal",
    "Opened",
    "Position",
    "PublishResult",
    "RevocationCheck",
    "Store",
    "revocation_refuses",
]

# "revoke": close every connection of the target user (payload: the public reason);
# "revoke_token": close every connection authenticated with the target token (its token id).
EnvelopeKind = Literal["user", "room", "broadcast", "connection", "revoke", "revoke_token"]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a message sits in its channel's history: ``offset`` grows by 1 per message within
    ``epoch``; a new epoch means the history behind the channel was lost."""

    offset: int
    epoch: str

    def as_dict(self) -> dict[str, Any]:
        return {"offset": self.offset, "epoch": self.epoch}


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message addressed to a user, a room, a connection or everyone, encoded once."""

    kind: EnvelopeKind
    target: str | None
    payload: Frame  # the encoded message sent to each recipient (JSON text unless binary)
    exclude_users: frozenset[str] = field(default_factory=frozenset)
    exclude_connections: frozenset[str] = field(default_factory=frozenset)
    #: Set by a history store when it gave the message a position (already in ``payload``).
    pos: Position | None = None


HistoryStatus = Literal["ok", "out_of_history", "epoch_changed"]


@dataclass(frozen=True, slots=True)
class HistoryRead:
    """What ``history_since`` found: the messages after the given position (payloads exactly as
    delivered, ``pos`` included), the channel's current top, and whether the range was whole.

    ``truncated`` is True when more messages were missed than ``max_messages``/``max_bytes``
    allowed; ``messages`` is then empty.
    """

    status: HistoryStatus
    top: Position
    messages: tuple[str, ...] = ()
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What ``publish`` did: connections reached on this node, other nodes it was sent to."""

    local: int
    remote_nodes: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryGap:
    """A window in which messages from other nodes may have been lost (pub/sub is at-most-once)."""

    started_at: float  # unix time the subscription was last known good
    ended_at: float  # unix time it was working again
    reason: str  # e.g. "redis connection lost: ConnectionError"


#: Deliver an envelope to this node's connections; returns how many it reached.
Deliver = Callable[[Envelope], Awaitable[int]]
#: Told about a delivery gap once the store is receiving again.
GapCallback = Callable[[DeliveryGap], Awaitable[None]]
#: Whether delivering an envelope on this node now could reach one of its connections: False
#: only when none could (answered from the host's own tables, at once, without an await).
HasLocalRecipients = Callable[[Envelope], bool]


@runtime_checkable
class Store(Protocol):
    """What ``provide_store`` returns. ``MemoryStore`` and ``RedisStore`` implement it."""

    #: Connection sessions and their saved state (``WebSocketSessionManager`` API).
    sessions: WebSocketSessionManager
    #: This node's id (unique per process).
    node_id: str

    async def start(self, deliver: Deliver, on_gap: GapCallback) -> None:
        """Connect to the backend and start delivering envelopes from other nodes to ``deliver``."""

    async def stop(self) -> None:
        """Stop delivering, remove this node's presence, release the backend."""

    async def ready(self) -> bool:
        """True when the backend answers and this node receives what is published."""

    async def publish(self, envelope: Envelope) -> PublishResult:
        """Deliver locally, then send ``envelope`` once to the other nodes."""

    async def add_connection(
        self, connection_id: str, user_id: str, max_per_user: int | None
    ) -> bool:
        """Count a connection of ``user_id``; False (and nothing counted) if the user already has
        ``max_per_user`` connections on live nodes."""

    async def remove_connection(self, connection_id: str, user_id: str) -> None:
        """Forget a connection counted by ``add_connection``."""

    async def join_room(self, room: str, connection_id: str, user_id: str) -> None:
        """Record room membership (presence)."""

    async def leave_room(self, room: str, connection_id: str) -> None:
        """Forget room membership."""

    async def room_members(self, room: str) -> dict[str, str]:
        """Connection id -> user id of everyone in ``room``, on every live node."""

    async def online_users(self) -> set[str]:
        """Users with at least one connection on a live node."""

    async def nodes(self) -> list[dict[str, Any]]:
        """The live nodes: ``{"node_id", "last_seen", ...}``."""

    async def revoke(self, subject: str, revoked_at: float, until: float) -> None:
        """Remember, for every node, that ``subject`` (``user:<id>`` or ``token:<id>``) was
        revoked at ``revoked_at`` (unix time); forget it at ``until``. Raises on a backend
        failure (the revocation was not recorded)."""

    async def revoked(self, subjects: Sequence[str]) -> list[float | None]:
        """When each of ``subjects`` was revoked (unix time), None where it is not (or no
        longer). One backend round trip: admission calls it for every connection."""

    def stats(self) -> dict[str, Any]:
        """Counters for metrics (published, received, gaps, publish failures, ...)."""


@runtime_checkable
class HistoryStore(Protocol):
    """What a store adds to keep channel history (optional: a store without it gives no ``pos``
    and no recovery). ``MemoryStore`` and ``RedisStore`` implement it.

    Channels are ``"room:<room>"`` and ``"user:<user_id>"``. When history is on for a kind,
    ``publish`` gives each room/user envelope with a JSON object payload the channel's next
    offset, splices ``"pos"`` into the payload once and sets ``Envelope.pos``, so every node
    delivers the same bytes in offset order.
    """

    def configure_history(self, config: HistoryConfig) -> None:
        """Called once by the host before ``start`` with the ``history`` config section."""

    async def history_top(self, channel: str) -> Position:
        """The channel's last assigned offset (0 if none) and its epoch."""

    async def history_since(
        self, channel: str, since: Position, max_messages: int, max_bytes: int
    ) -> HistoryRead:
        """The messages after ``since`` in offset order, reading at most ``max_messages`` + 1
        entries: never an unbounded range. ``max_bytes`` bounds the payloads' UTF-8 size
        (:func:`netrun_ws.history.utf8_size`, ``pos`` included)."""

    async def record_join(self, session_id: str, channel: str) -> Position:
        """Remember (until the session expires) that ``session_id`` joined ``channel`` now;
        returns the channel's top, the position recovery starts from when the client has none."""

    async def forget_join(self, session_id: str, channel: str) -> None:
        """The session left ``channel``."""

    async def session_channels(self, session_id: str) -> dict[str, Position]:
        """The channels ``session_id`` joined and has not left, with their join positions."""


@runtime_checkable
class LocalRecipientStore(Protocol):
    """What a store may add to learn, as it publishes, whether this node has a recipient of the
    envelope (optional: a store without it is never asked to tell). ``RedisStore`` implements it.

    The host calls ``use_local_recipients`` once, before ``start``, with its
    :data:`HasLocalRecipients`. A store may use it to skip work that only serves local
    recipients: ``RedisStore.publish`` of a message with a history position returns after its
    history call, with ``local=0``, instead of waiting for its own copy from the bus to learn the
    local count. Whatever it skips, the store still delivers everything to ``deliver`` as
    before (a connection that arrives meanwhile gets the message there, in offset order).
    """

    def use_local_recipients(self, has_local: HasLocalRecipients) -> None:
        """Called once by the host before ``start``."""


#: A revocation ``open_connection`` checks: ``(subject, issued_at)``. The subject refuses the
#: connection when it was revoked at or after ``issued_at`` (always, when ``issued_at`` is None):
#: a user's tokens issued after its revocation pass, a revoked token never does.
RevocationCheck = tuple[str, float | None]
#: Why ``open_connection`` registered nothing: a revocation, a session bound to another user,
#: ``max_per_user`` reached.
OpenRefusal = Literal["revoked", "session_not_yours", "user_limit"]


class Opened(NamedTuple):
    """What ``open_connection`` did: the connection's session record id, or why it refused."""

    store_id: str | None
    refusal: OpenRefusal | None = None


def revocation_refuses(checks: Sequence[RevocationCheck], revoked: Sequence[float | None]) -> bool:
    """Whether revocations at ``revoked`` (``Store.revoked``'s answer for the checks' subjects,
    in order) refuse the connection."""
    for (_subject, issued_at), revoked_at in zip(checks, revoked, strict=True):
        if revoked_at is not None and (issued_at is None or issued_at <= revoked_at):
            return True
    return False


@runtime_checkable
class ConnectionRecords(Protocol):
    """What a store may add to keep a connection's records in one call at open and one at
    close (optional: admission builds both from the ``Store`` calls for a store without them,
    in netrun_ws/runtime/connection_records.py). ``MemoryStore`` implements it.

    Each call does what the ``Store`` calls it stands for do, in their order, as one step.
    """

    async def open_connection(
        self,
        session_id: str,
        user_id: str,
        username: str,
        max_per_user: int | None,
        revocations: Sequence[RevocationCheck],
    ) -> Opened:
        """``revoked`` (refused: "revoked"), ``sessions.claim_session`` (refused:
        "session_not_yours"), ``sessions.create_connection``, ``add_connection`` (refused:
        "user_limit", and the record is removed as ``sessions.disconnect(id, save_state=True)``
        removes it). A refusal or an exception leaves nothing of the connection registered."""

    async def close_connection(
        self, store_id: str, session_id: str | None, user_id: str, state: dict[str, Any]
    ) -> bool:
        """``sessions.claim_session(session_id, user_id)`` and, if the session is the user's,
        ``sessions.save_connection_state(store_id, state)``; then ``remove_connection`` and
        ``sessions.disconnect(store_id, save_state=True)``, also when saving failed (the error is
        raised after). Returns whether the state was saved."""
