"""What a plugin puts on the wire: the error reply and the frame encoding the host uses.

``on_message`` may return ``error_reply(ErrorCode.FORBIDDEN, "...")`` to answer the sender with
the same ``{"type": "error", ...}`` reply the host sends for its own refusals (docs/protocol.md);
``encode_message`` makes the already-encoded payload of a :class:`netrun_ws.store.Envelope`.
"""

from __future__ import annotations

from typing import Any

from netrun_ws.connection_manager import encode_message

__all__ = ["encode_message", "error_reply"]


def error_reply(code: str, error: str, details: Any = None) -> dict[str, Any]:
    """The error reply ``{"type": "error", "error", "code", "details"}``; the connection stays open.

    ``code`` is an :class:`netrun_ws.codes.ErrorCode` value (or a code of your own), ``error`` a
    human-readable reason, ``details`` anything JSON can encode (None by default).
    """
    return {"type": "error", "error": error, "code": code, "details": details}
