"""Where the Redis store's keys and bus channels are named: one place, for one Redis or a cluster.

One Redis: every key is under the prefix ``P`` and the bus is one channel, ``P:bus``.

Redis Cluster: the per-message work (channel history and the bus) is spread over ``groups``
slot groups, so that more shards add message capacity. A history channel ``C`` (``room:<room>``,
``user:<user_id>``) belongs to group ``crc32(C) mod groups`` (stable across processes and
versions, unlike Python's ``hash``). Group ``g`` has its own hash tag, ``{P:<g>}`` or, when that
one hashes outside the group's share of the slot space, ``{P:<g>.<n>}`` for the first ``n`` that
lands inside it: group ``g`` takes a slot in ``[g * 16384 / groups, (g + 1) * 16384 / groups)``,
so the groups spread evenly over the masters of an evenly split cluster. The group's history
keys, its sessions' join records and its bus channel ``{P:<g>}:bus`` share that tag's slot, so
the history script (offset, stream entry, SPUBLISH) stays one single-slot call. Messages with no
channel (broadcasts, revocations, messages to one connection) go on group 0's bus. The
per-connection keys (presence, records, sessions, revocations) stay under ``{P}``: their scripts
span a user's connections and rooms, one slot.

``groups`` is part of the layout, like the prefix: every node must use the same value, and
changing it moves history to other keys (read as a new epoch, as after a flush).
"""

from __future__ import annotations

import binascii
import zlib

from netrun_ws.history import ROOM_PREFIX, USER_PREFIX
from netrun_ws.store import Envelope

__all__ = ["DEFAULT_BUS_GROUPS", "MAX_BUS_GROUPS", "KeyLayout"]

#: Slot groups on Redis Cluster when not configured: more than the masters of most clusters,
#: few enough that every node's subscriptions and a resume's join reads stay cheap.
DEFAULT_BUS_GROUPS = 16
#: Each group's tag is found by trying suffixes (about ``groups`` tries each): this bounds it.
MAX_BUS_GROUPS = 256
#: Redis Cluster's slots.
_SLOTS = 16384


class KeyLayout:
    """The names of the store's keys and bus channels."""

    def __init__(self, key_prefix: str, *, cluster: bool, groups: int = DEFAULT_BUS_GROUPS) -> None:
        if isinstance(groups, bool) or not isinstance(groups, int):
            raise ValueError(f"bus_groups must be an integer, got {groups!r:.40}")
        if not 1 <= groups <= MAX_BUS_GROUPS:
            raise ValueError(f"bus_groups must be between 1 and {MAX_BUS_GROUPS}, got {groups}")
        self.cluster = cluster
        #: The base of the per-connection keys: ``P``, or the hash tag ``{P}`` on a cluster.
        self.keys = f"{{{key_prefix}}}" if cluster else key_prefix
        count = groups if cluster else 1  # one Redis: one bus, the historic names
        #: The base of each group's history keys (``{P:<g>}`` on a cluster; ``P`` on one Redis).
        self.tags: tuple[str, ...] = (
            tuple(_group_tag(key_prefix, group, count) for group in range(count))
            if cluster
            else (key_prefix,)
        )
        #: Each group's bus channel.
        self.buses: tuple[str, ...] = tuple(f"{tag}:bus" for tag in self.tags)

    @property
    def groups(self) -> int:
        return len(self.tags)

    def group_of(self, channel: str) -> int:
        """The group of history channel ``channel`` (0 on one Redis)."""
        if len(self.tags) == 1:
            return 0
        return zlib.crc32(channel.encode("utf-8", "surrogatepass")) % len(self.tags)

    def envelope_group(self, envelope: Envelope) -> int:
        """The group whose bus carries ``envelope``: its room's or user's, else group 0."""
        if len(self.tags) == 1 or envelope.target is None:
            return 0
        if envelope.kind == "room":
            return self.group_of(ROOM_PREFIX + envelope.target)
        if envelope.kind == "user":
            return self.group_of(USER_PREFIX + envelope.target)
        return 0

    def history_base(self, channel: str) -> str:
        """``<tag>:h:<channel>``: the channel's metadata hash (its stream adds ``:s``)."""
        return f"{self.tags[self.group_of(channel)]}:h:{channel}"

    def joins_key(self, session_id: str, group: int) -> str:
        """The hash of where session ``session_id`` joined the channels of ``group``."""
        return f"{self.tags[group]}:hj:{session_id}"


def _group_tag(key_prefix: str, group: int, groups: int) -> str:
    """``{P:<g>}``, or ``{P:<g>.<n>}`` for the first ``n`` whose slot is in the group's share."""
    low = group * _SLOTS // groups
    high = (group + 1) * _SLOTS // groups
    name = f"{key_prefix}:{group}"
    attempt = 0
    while not low <= _slot(name) < high:
        attempt += 1
        name = f"{key_prefix}:{group}.{attempt}"
    return f"{{{name}}}"


def _slot(tag: str) -> int:
    """Redis Cluster's slot of a key whose hash tag is ``tag`` (CRC16/XMODEM mod 16384; the
    module imports without redis-py, as the store plugin's options do)."""
    return binascii.crc_hqx(tag.encode(), 0) % _SLOTS
