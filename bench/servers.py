"""The servers under test, one per process: ``python bench/servers.py KIND --port P --mode M``.

KIND is ``netrun`` (netrun-ws, whole pipeline, built as `netrun-ws run` builds it), ``raw_asgi``,
``raw_asgi_netrun_protocol`` (the same raw app on netrun-ws's websocket and HTTP protocols),
``starlette``, ``starlette_jwt`` (Starlette verifying the JWT and sending a welcome; echo only),
``socketio`` (all on the same uvicorn settings), ``websockets`` or ``picows`` (their own servers,
on uvloop like uvicorn). MODE ``echo`` sends every text frame back; ``fanout`` sends it to every
other connection.
The process pins itself to one core (``--cpu``) before importing any server code.
"""

from __future__ import annotations

import argparse
import os
import resource
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Shared by the load generator, which signs one token per connection with it.
JWT_SECRET = "netrun-ws-benchmark-secret-0123456789-abcdefghij"
#: netrun-ws with 1 or 3 extra plugins whose on_message handles another type (other_plugin.py):
#: kind -> (how many, their module prefix); the catch-all ones are for comparison.
EXTRA_PLUGINS = {
    "netrun": (0, ""),
    "netrun_plus1": (1, "bench.other_plugin_"),
    "netrun_plus3": (3, "bench.other_plugin_"),
    "netrun_plus3_catchall": (3, "bench.catchall_plugin_"),
}
#: netrun-ws fanning out to a room (bench/room_plugin.py) with room history on or off.
ROOM_KINDS = {"netrun_room_history": True, "netrun_room_nohistory": False}
UVICORN_KINDS = (
    *EXTRA_PLUGINS,
    *ROOM_KINDS,
    "raw_asgi",
    "raw_asgi_netrun_protocol",
    "starlette",
    "starlette_jwt",
    "socketio",
)
KINDS = (*UVICORN_KINDS, "websockets", "picows")
#: The same uvicorn settings for every uvicorn-based server (only deflate may differ, see run.py).
UVICORN_SETTINGS: dict[str, Any] = {
    "host": "127.0.0.1",
    "log_level": "warning",
    "access_log": False,
    "lifespan": "auto",
    "ws_max_size": 65536,
    "backlog": 2048,
}


def room_config(deflate: bool, history: bool) -> dict[str, Any]:
    """The whole pipeline as :func:`netrun_config`, fanning out through a room instead: room
    messages get a position and go to history when ``history`` is on (its defaults: 200 kept)."""
    config = netrun_config(deflate)
    config["plugins"] = ["bench.room_plugin"]
    config["history"] = {"rooms_enabled": history}
    return config


def netrun_config(deflate: bool, extra_plugins: tuple[int, str] = (0, "")) -> dict[str, Any]:
    """The whole pipeline: JWT auth, validation, metrics (prometheus + json), heartbeat; and
    ``extra_plugins`` app plugins that handle other message types than the echo's."""
    return {
        "server": {"path": "/ws", "log_level": "warning", "permessage_deflate": deflate},
        "limits": {
            "max_connections": 19000,
            # The limiter still runs on every frame; 50/s (the default) would throttle the bench.
            "messages_per_second": 1_000_000,
            # All load comes from this machine; the per-IP default (100) is for the internet.
            "max_connections_per_ip": 100_000,
            # Thousands of handshakes at once from one IP: pending-request limits to match.
            "max_pending_requests": 100_000,
            "max_pending_requests_per_ip": 100_000,
        },
        "auth": {"plugin": "jwt", "secret": JWT_SECRET, "algorithms": ["HS256"]},
        "store": {"plugin": "memory"},
        "heartbeat": {"plugin": "ping", "interval": 30, "timeout": 90, "max_missed": 3},
        "reconnect": {"plugin": "exponential"},
        "protocol": {"plugin": "json", "schemas": ["netrun_ws.protocol"]},
        "metrics": [{"plugin": "prometheus"}, {"plugin": "json"}],
        "plugins_dir": None,
        "plugins": [
            "bench.echo_plugin",
            *(f"{extra_plugins[1]}{n}" for n in range(1, extra_plugins[0] + 1)),
        ],
    }


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def raw_asgi_app(mode: str) -> ASGIApp:
    """The leanest possible ASGI websocket endpoint on uvicorn."""
    peers: set[Send] = set()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        peers.add(send)
        try:
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    return
                out = {"type": "websocket.send", "text": message.get("text")}
                if mode == "echo":
                    await send(out)
                    continue
                for peer in list(peers):
                    if peer is not send:
                        await peer(out)
        finally:
            peers.discard(send)

    return app


def starlette_app(mode: str) -> ASGIApp:
    """A bare Starlette websocket endpoint, written the way its docs show."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    peers: set[WebSocket] = set()

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        peers.add(websocket)
        try:
            while True:
                text = await websocket.receive_text()
                if mode == "echo":
                    await websocket.send_text(text)
                    continue
                for peer in list(peers):
                    if peer is not websocket:
                        await peer.send_text(text)
        except WebSocketDisconnect:
            pass
        finally:
            peers.discard(websocket)

    app: ASGIApp = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    return app


def starlette_jwt_app(mode: str) -> ASGIApp:
    """The Starlette endpoint with what netrun-ws does at connect written by hand: the bearer
    JWT verified with PyJWT (HS256, the same secret and tokens), then a welcome message."""
    import json

    import jwt
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def endpoint(websocket: WebSocket) -> None:
        _scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
        try:
            claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
        except jwt.InvalidTokenError:
            await websocket.close(code=1008)
            return
        await websocket.accept()
        await websocket.send_text(json.dumps({"type": "connect", "user_id": claims["sub"]}))
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect:
            pass

    app: ASGIApp = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    return app


def socketio_app(mode: str) -> ASGIApp:
    import socketio  # type: ignore[import-untyped]

    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")

    @sio.on("echo")  # type: ignore[untyped-decorator]
    async def echo(sid: str, data: Any) -> None:
        await sio.emit("echo", data, to=sid)

    @sio.on("publish")  # type: ignore[untyped-decorator]
    async def publish(sid: str, data: Any) -> None:
        await sio.emit("publish", data, skip_sid=sid)

    app: ASGIApp = socketio.ASGIApp(sio)
    return app


async def serve_websockets(port: int, mode: str) -> None:
    """The plain ``websockets`` server (its defaults), ``websockets.broadcast`` for fan-out."""
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    connections: set[ServerConnection] = set()

    async def handler(websocket: ServerConnection) -> None:
        connections.add(websocket)
        try:
            async for message in websocket:
                if mode == "echo":
                    await websocket.send(message)
                else:
                    broadcast([c for c in connections if c is not websocket], message)
        finally:
            connections.discard(websocket)

    async with serve(handler, "127.0.0.1", port, max_size=65536, backlog=2048) as server:
        await server.serve_forever()


async def serve_picows(port: int, mode: str) -> None:
    """picows: the ceiling (a C websocket implementation with synchronous callbacks)."""
    from picows import (
        WSFrame,
        WSListener,
        WSMsgType,
        WSTransport,
        WSUpgradeRequest,
        ws_create_server,
    )

    transports: set[WSTransport] = set()

    class Listener(WSListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            transports.add(transport)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            transports.discard(transport)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                payload = frame.get_payload_as_bytes()
                if mode == "echo":
                    transport.send(WSMsgType.TEXT, payload)
                    return
                for peer in transports:
                    if peer is not transport:
                        peer.send(WSMsgType.TEXT, payload)
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    def factory(request: WSUpgradeRequest) -> WSListener:
        return Listener()

    server = await ws_create_server(factory, "127.0.0.1", port, backlog=2048)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("echo", "fanout"), default="echo")
    parser.add_argument("--deflate", choices=("on", "off"), default="on")
    parser.add_argument("--cpu", type=int, default=0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.kind not in UVICORN_KINDS:
        import uvloop

        runner = serve_websockets if args.kind == "websockets" else serve_picows
        uvloop.run(runner(args.port, args.mode))
        return
    import uvicorn

    deflate = args.deflate == "on"
    if args.kind in EXTRA_PLUGINS or args.kind in ROOM_KINDS:
        # Built as `netrun-ws run` builds it: its websocket protocol (server.ws_protocol) and its
        # garbage-collector settings (server.gc_threshold, server.gc_freeze), all defaults.
        from netrun_ws.app import load_app_config
        from netrun_ws.cli import build_server

        if args.kind in ROOM_KINDS:
            config = room_config(deflate, ROOM_KINDS[args.kind])
        else:
            config = netrun_config(deflate, EXTRA_PLUGINS[args.kind])
        build_server(load_app_config(config), port=args.port, **UVICORN_SETTINGS).run()
        return
    builders: dict[str, Callable[[], ASGIApp]] = {
        "raw_asgi": lambda: raw_asgi_app(args.mode),
        "raw_asgi_netrun_protocol": lambda: raw_asgi_app(args.mode),
        "starlette": lambda: starlette_app(args.mode),
        "starlette_jwt": lambda: starlette_jwt_app(args.mode),
        "socketio": lambda: socketio_app(args.mode),
    }
    settings = dict(UVICORN_SETTINGS)
    if args.kind == "raw_asgi_netrun_protocol":  # what netrun-ws's protocol alone changes
        from netrun_ws.cli import http_protocol_class, ws_protocol_class

        settings["ws"] = ws_protocol_class("netrun")
        settings["http"] = http_protocol_class("netrun")
    config = uvicorn.Config(
        builders[args.kind](), port=args.port, ws_per_message_deflate=deflate, **settings
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
