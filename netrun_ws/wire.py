"""The wire format: how a message becomes a frame, and the error reply every client understands.

Public: plugins and apps may use :func:`encode_message` and :func:`error_reply`; the framing
helpers are what the host and :class:`netrun_ws.connection.Connection` send with.
"""

from __future__ import annotations

import json
import struct
from typing import Any, NoReturn

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_json
from websockets.frames import Opcode

__all__ = [
    "OPCODE_BINARY",
    "OPCODE_TEXT",
    "Frame",
    "encode_message",
    "error_reply",
    "frame_header",
    "frame_size",
    "truncate_close_reason",
    "wire_frame",
]

#: The wire frame: ``str`` goes out as a text frame, ``bytes`` as a binary frame.
Frame = str | bytes

OPCODE_TEXT = int(Opcode.TEXT)
OPCODE_BINARY = int(Opcode.BINARY)
_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")

# RFC 6455 caps a close reason at 123 bytes of UTF-8; longer ones make the server library raise.
_MAX_CLOSE_REASON_BYTES = 123


def error_reply(code: str, error: str, details: Any = None) -> dict[str, Any]:
    """The ``{"type": "error", ...}`` reply (docs/protocol.md); ``code`` is an
    :class:`~netrun_ws.codes.ErrorCode` value or an app's own."""
    return {"type": "error", "error": error, "code": code, "details": details}


_MODEL_DUMP_JSON = BaseModel.model_dump_json
#: Model classes already encoded that keep pydantic's own ``model_dump_json``: the next message
#: of such a class skips the type tests (one dict lookup). Bounded, for apps that make classes
#: at run time.
_PLAIN_MODELS: dict[type, bool] = {}
_MAX_PLAIN_MODELS = 4096


def _no_constant(name: str) -> NoReturn:
    raise TypeError(f"message is not strict JSON: {name} (a non-finite float) has no JSON form")


def _check_strict(encoded: str | bytes) -> None:
    """Raise TypeError if pydantic wrote ``NaN``/``Infinity``/``-Infinity`` for a non-finite
    float: strict JSON parsers refuse them. Called only when the text contains one of those
    words; most messages are let through by two one-character searches (memchr) first."""
    json.loads(encoded, parse_constant=_no_constant)


def _may_be_loose(frame: str) -> bool:
    """After the one-character prefilter: does a word that may be a JSON constant occur?"""
    return "NaN" in frame or "Infinity" in frame


def encode_message(message: Any, binary: bool = False) -> Frame:
    """Encode ``message`` into one wire frame (``str`` = text frame, ``bytes`` = binary frame).

    - ``dict`` / ``list`` / ``tuple``: JSON (datetimes, UUIDs, models inside are handled);
    - a pydantic ``BaseModel``: ``model_dump_json()``;
    - ``str``: sent as is (already-encoded JSON or plain text);
    - ``bytes`` / ``bytearray``: always a binary frame.

    ``binary=True`` turns a text result into a binary frame of its UTF-8 bytes.
    Raises ``TypeError`` for any other type or for a value JSON cannot represent, including a
    NaN or infinite float (what is sent is strict JSON; a ``str`` is sent as given).
    """
    frame: str
    if _PLAIN_MODELS.get(type(message)):  # the per-message path: a reply model seen before
        frame = message.__pydantic_serializer__.to_json(message).decode()
        if ("N" in frame or "I" in frame) and _may_be_loose(frame):
            _check_strict(frame)
        return frame.encode() if binary else frame
    if isinstance(message, str):
        return message.encode() if binary else message  # sent as given
    if isinstance(message, bytes | bytearray):
        return bytes(message)
    if isinstance(message, BaseModel):
        model = type(message)
        if model.model_dump_json is _MODEL_DUMP_JSON:
            # What model_dump_json() does with its defaults, minus its keyword plumbing (a third
            # of a small model's encoding time); a model that overrides it is still honoured.
            frame = message.__pydantic_serializer__.to_json(message).decode()
            if len(_PLAIN_MODELS) < _MAX_PLAIN_MODELS:
                _PLAIN_MODELS[model] = True
        else:
            frame = message.model_dump_json()
    elif isinstance(message, dict | list | tuple):
        try:
            encoded = to_json(message)
        except PydanticSerializationError as exc:
            raise TypeError(f"message is not JSON-serializable: {exc}") from None
        if binary:
            if b"NaN" in encoded or b"Infinity" in encoded:
                _check_strict(encoded)
            return encoded
        frame = encoded.decode()
    else:
        raise TypeError(
            "message must be a dict, list, pydantic model, str or bytes, "
            f"not {type(message).__name__}"
        )
    # Strict JSON out. The one-character searches come first, inline: per-message path.
    if ("N" in frame or "I" in frame) and _may_be_loose(frame):
        _check_strict(frame)
    return frame.encode() if binary else frame


def frame_size(frame: Frame) -> int:
    """Size of ``frame`` on the wire, in bytes (UTF-8 for text)."""
    if isinstance(frame, bytes):
        return len(frame)
    # str.isascii() is O(1) in CPython, so the common case avoids an encode.
    return len(frame) if frame.isascii() else len(frame.encode())


def frame_header(opcode: int, length: int) -> bytes:
    """The RFC 6455 (section 5.2) header of a final, unmasked frame: what a server sends for a
    whole message when no extension rewrites frames. (websockets builds the same bytes through a
    Frame object; this is the per-message path, where that costs several times more.)"""
    first = 0x80 | opcode
    if length < 126:
        return bytes((first, length))
    if length < 0x10000:
        return _HEADER_16.pack(first, 126, length)
    return _HEADER_64.pack(first, 127, length)


def wire_frame(frame: Frame) -> bytes:
    """``frame`` as one unmasked server frame (text for ``str``), ready for
    :meth:`DirectChannel.send_wire`: a broadcast frames its payload once for every recipient."""
    if isinstance(frame, str):
        data = frame.encode()
        return frame_header(OPCODE_TEXT, len(data)) + data
    return frame_header(OPCODE_BINARY, len(frame)) + frame


def truncate_close_reason(reason: str) -> str:
    """``reason`` cut to the 123 UTF-8 bytes a close frame allows (never mid-character)."""
    encoded = reason.encode()
    if len(encoded) <= _MAX_CLOSE_REASON_BYTES:
        return reason
    return encoded[:_MAX_CLOSE_REASON_BYTES].decode(errors="ignore")
