"""The Python client: a connection that answers pings, refreshes its token, reconnects by the
server's policy, resumes its session and recovers missed messages (docs/clients.md).

    from netrun_ws.client import Client

    async with Client("ws://127.0.0.1:8000/ws", params={"user_id": "alice"}) as client:
        await client.send({"type": "join", "room": "lobby"})
        async for message in client:
            print(message)
"""

from .client import CONTROL_TYPES, Client, Message, TokenSource
from .events import ClientClosed, Gap, State, StateChange
from .positions import Position
from .retry import (
    CLOSE_CODE_RANGES,
    CLOSE_CODE_RULES,
    HTTP_STATUS_RULES,
    Retry,
    RetryRule,
    retry_delay,
    rule_for_close,
    rule_for_status,
)

__all__ = [
    "CLOSE_CODE_RANGES",
    "CLOSE_CODE_RULES",
    "CONTROL_TYPES",
    "HTTP_STATUS_RULES",
    "Client",
    "ClientClosed",
    "Gap",
    "Message",
    "Position",
    "Retry",
    "RetryRule",
    "State",
    "StateChange",
    "TokenSource",
    "retry_delay",
    "rule_for_close",
    "rule_for_status",
]
