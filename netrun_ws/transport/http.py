"""uvicorn's httptools HTTP protocol, handing a websocket upgrade over already parsed.

On an upgrade request, uvicorn's HTTP protocol writes the request it has just parsed back into
bytes, and the websocket protocol parses those bytes again. With netrun-ws's websocket
protocol (:class:`netrun_ws.transport.NetrunWebSocketProtocol`), :class:`NetrunHttpToolsProtocol`
hands over the parsed request instead: the method, target and header fields httptools read
become the ``Request`` websockets' parser would have made of them
(:func:`netrun_ws.transport.request_from_fields`, with websockets' grammar and limits), and
the websocket protocol starts from the addresses the HTTP protocol already looked up. Anything
unusual, or any other websocket protocol class, takes uvicorn's own path. Everything else
about HTTP is uvicorn's. What this relies on in uvicorn's protocol is listed in
:mod:`netrun_ws._upstream.uvicorn_httptools`, which it imports it from.
"""

from __future__ import annotations

from typing import Any

from netrun_ws._upstream.uvicorn_httptools import TRACE_LOG_LEVEL, HttpToolsProtocol
from netrun_ws.transport.websocket import NetrunWebSocketProtocol, request_from_fields

__all__ = ["NetrunHttpToolsProtocol"]


class NetrunHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``httptools`` protocol; upgrades hand the parsed request over."""

    #: The request's header list and whether it asks for a websocket upgrade.
    _upgrade_answer: tuple[object, bool] | None = None

    def _should_upgrade(self) -> bool:
        # uvicorn asks twice per upgrade (the head parsed, then httptools' upgrade signal),
        # each time splitting the Connection field again: once per request's header list here.
        headers = self.headers
        known = self._upgrade_answer
        if known is not None and known[0] is headers:
            return known[1]
        answer = super()._should_upgrade()
        self._upgrade_answer = (headers, answer)
        return answer

    def handle_websocket_upgrade(self) -> None:
        protocol_class: Any = self.ws_protocol_class
        request = None
        if isinstance(protocol_class, type) and issubclass(protocol_class, NetrunWebSocketProtocol):
            request = request_from_fields(self.scope["method"], self.url, self.headers)
        if request is None:
            super().handle_websocket_upgrade()
            self._release()
            return
        if self.logger.level <= TRACE_LOG_LEVEL:
            prefix = f"{self.client[0]}:{self.client[1]} - " if self.client else ""
            self.logger.log(TRACE_LOG_LEVEL, "%sUpgrading to WebSocket", prefix)
        self.connections.discard(self)
        protocol: NetrunWebSocketProtocol = protocol_class(
            config=self.config,
            server_state=self.server_state,
            app_state=self.app_state,
            _loop=self.loop,  # not looked up again (a getpid() system call)
        )
        protocol.adopt(self)
        protocol.connect_parsed(request, self.headers)
        self.transport.set_protocol(protocol)
        self._release()

    def _release(self) -> None:
        # httptools' parser holds this protocol's callbacks and the protocol holds the parser
        # (as does an earlier request's cycle, on a kept-alive connection): left alone, that
        # cycle (about 17 objects) waits for the garbage collector after every upgrade. The
        # transport belongs to the websocket protocol now; nothing reads these.
        self.parser = None  # type: ignore[assignment]
        self.cycle = None  # type: ignore[assignment]
