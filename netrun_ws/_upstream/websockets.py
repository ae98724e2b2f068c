"""websockets internals that netrun-ws's websocket protocol (netrun_ws.transport.websocket) uses.

Tested with websockets 17 (:data:`TESTED`). The upgrade request reaches websockets' sans-I/O
``ServerProtocol`` already parsed (docs/architecture.md), which relies on:

- ``Protocol.parse``, the frame parser, and ``ServerProtocol.parse``, which first reads the
  request and then runs it: :class:`ParsedRequestServerProtocol` starts at the frames;
- :data:`MAX_LINE_LENGTH` and :data:`MAX_NUM_HEADERS`, the limits of websockets' HTTP parser,
  which ``request_from_fields`` applies so that it refuses what that parser refuses;
- the ``Request`` that parser builds (its path, and header values decoded as ISO-8859-1, as
  17 does) and ``ServerProtocol.accept`` taking a ``Request`` built elsewhere;
- ``handshake_exc`` being set, with the error response queued, when the parser refuses a
  request it has not finished reading (a 431 for an over-long line);
- :data:`HEADERS_CHECK_VALUES`: whether ``Headers`` refuses a value outside RFC 9110's
  grammar (17 does; otherwise netrun-ws checks each value itself).

:func:`refusal` checks the release and the parsers and limits named here;
tests/upstream/test_websockets.py compares netrun-ws's parsing with websockets' own.
"""

from __future__ import annotations

import inspect

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeaderValue
from websockets.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS
from websockets.protocol import Protocol
from websockets.server import ServerProtocol

from netrun_ws._upstream import ReleaseRange

__all__ = [
    "HEADERS_CHECK_VALUES",
    "MAX_LINE_LENGTH",
    "MAX_NUM_HEADERS",
    "TESTED",
    "ParsedRequestServerProtocol",
    "refusal",
]

TESTED = ReleaseRange("websockets", (17,), (18,))


class ParsedRequestServerProtocol(ServerProtocol):
    """websockets' server protocol for a connection whose upgrade request was parsed already:
    its parser starts at the frames (the stock one first waits for the request's lines)."""

    parse = Protocol.parse


def _headers_check_values() -> bool:
    try:
        Headers()["x-probe"] = "\x00"
    except InvalidHeaderValue:
        return True
    return False


#: Whether ``Headers`` refuses values outside the RFC 9110 grammar itself.
HEADERS_CHECK_VALUES = _headers_check_values()


def refusal() -> str | None:
    """Why this websockets is not the one netrun-ws's protocol was built on, or None."""
    if reason := TESTED.refusal():
        return reason
    parsers = (Protocol.parse, ServerProtocol.parse)
    if not all(map(inspect.isgeneratorfunction, parsers)) or parsers[0] is parsers[1]:
        return "websockets' ServerProtocol.parse no longer reads the request before the frames"
    if not (isinstance(MAX_LINE_LENGTH, int) and isinstance(MAX_NUM_HEADERS, int)):
        return "websockets' HTTP parser limits are no longer plain numbers"
    return None
