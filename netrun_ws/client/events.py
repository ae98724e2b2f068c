"""What the client tells the app besides messages: connection states, gaps, and why it stopped."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.Enum):
    CONNECTING = "connecting"  # the first connection is being opened
    CONNECTED = "connected"  # the welcome arrived
    RECONNECTING = "reconnecting"  # the connection ended; waiting ``delay`` before ``attempt``
    CLOSED = "closed"  # for good: ``close()``, a terminal code, or attempts used up


@dataclass(frozen=True, slots=True)
class StateChange:
    """One transition, given to ``on_state``.

    ``code``/``reason``: the close code (or the refused handshake's HTTP status) and reason that
    ended the previous connection, when there was one. ``attempt``/``delay``: the reconnect
    attempt about to be made and the wait before it (RECONNECTING). ``resumed``: the server
    restored the session (CONNECTED).
    """

    state: State
    code: int | None = None
    reason: str = ""
    attempt: int = 0
    delay: float = 0.0
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages on ``channel`` may have been lost: the app should refetch what it shows.

    ``reason`` is the server's (``epoch_changed``, ``out_of_history``, ``replay_limit``) or the
    client's: ``session_lost`` (the server did not resume the session, so no recovery ran),
    ``resume_refused`` (the server refused the resume request), ``epoch_changed`` (a live message
    came in a new epoch). For a Redis delivery gap (``delivery_gap``) ``channel`` is None and
    ``since``/``until`` are the server's unix times. ``offset``/``epoch``: where the channel
    continues from, when known.
    """

    channel: str | None
    reason: str
    offset: int | None = None
    epoch: str | None = None
    since: float | None = None
    until: float | None = None


class ClientClosed(Exception):
    """The client stopped for good because of the server or the network (not ``close()``).

    ``code`` is the close code, or the HTTP status of a refused handshake, or None when the
    server could not be reached; ``reason`` says why in one line.
    """

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
