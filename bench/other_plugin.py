"""Extra app plugins for the echo scenario's ``netrun_plus1`` / ``netrun_plus3`` servers: each
registers a message type of its own and has an ``async`` ``on_message`` for it (``handles`` its
model, so the host routes only that type to it). The echo never reaches them: what they cost the
echo is what a plugin that handles another type costs a message (issue 18's < 5% per plugin).
``netrun_plus3_catchall`` has the same three as catch-alls that ignore other types, the way
plugins were called before dispatch by type, for comparison.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, create_model

from netrun_ws import handles, hookimpl


def plugin_class(tag: str, *, routed: bool = True) -> type:
    """A plugin class handling the message type ``tag``: routed to it only, or (``routed``
    False, for comparison) a catch-all that returns None for every other type, as plugins had to
    be written before dispatch by message type."""
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"Other_{tag}", type=(Literal[tag], ...), seq=(int, 0)
    )

    class Routed:
        @hookimpl
        def register_message_types(self) -> list[type[BaseModel]]:
            return [model]

        @hookimpl
        @handles(model)
        async def on_message(self, message: Any) -> dict[str, Any]:
            return {"type": f"{tag}_ack", "seq": message.seq}

    class CatchAll:
        @hookimpl
        def register_message_types(self) -> list[type[BaseModel]]:
            return [model]

        @hookimpl
        async def on_message(self, message: BaseModel) -> dict[str, Any] | None:
            if isinstance(message, model):
                return {"type": f"{tag}_ack", "seq": message.seq}  # type: ignore[attr-defined]
            return None

    return Routed if routed else CatchAll
