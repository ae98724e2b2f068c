"""A test plugin: when a resuming session rejoins a room, five messages are published to it, while
the connection is still recovering (so they are held for it)."""

from __future__ import annotations

from netrun_ws import Connection, Host, hookimpl


class Plugin:
    @hookimpl
    async def on_room_join(self, host: Host, connection: Connection, room: str) -> None:
        if connection.metadata.get("resuming"):
            for n in range(5):
                await host.publish_room(room, {"type": "burst", "n": n})
