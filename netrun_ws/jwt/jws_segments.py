"""PyJWT's decoder with its base64url segment check done by C code instead of a Python loop.

Since 2.10, PyJWT checks every character of each token segment against the base64url alphabet
in a Python generator, then re-encodes the decoded bytes to refuse non-canonical encodings
(GHSA-hxm8-2xgr-2p9m). For an HS256 token of ~180 characters that was about 45% of the
instructions a verification costs. :func:`decode_segment` makes the same decisions with a regex
and ``binascii``: the same segments are accepted, with the same bytes, and every other segment
gets the ``DecodeError`` PyJWT raises (tests/upstream/test_pyjwt.py compares the two).

:func:`decoder` is ``jwt.PyJWT`` with that one step replaced
(:class:`netrun_ws._upstream.pyjwt.SegmentCheckedPyJWT`, built on PyJWT internals); everything
else in a decode (the algorithm allowlist, the signature check, every claim check) is PyJWT's
own. Where that fence is shut (an untested PyJWT), it is plain ``jwt.PyJWT``: the same
decisions, with PyJWT's own segment check.
"""

from __future__ import annotations

import binascii
import re

from jwt import PyJWT
from jwt.exceptions import DecodeError
from jwt.types import Options

from netrun_ws.jwt import pyjwt_internals_usable

__all__ = ["decode_segment", "decoder"]

_ALPHABET_RUN = re.compile(rb"[A-Za-z0-9_-]*")
_URL_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_STANDARD_TO_URL = bytes.maketrans(b"+/", b"-_")


def decode_segment(segment: bytes, name: str) -> bytes:
    """The bytes of one base64url segment; ``DecodeError`` exactly where PyJWT raises it.

    Accepted: base64url characters with at most two ``=`` of padding (only when the padded
    length is a multiple of 4), a length that is not 1 mod 4, and a canonical encoding (no stray
    bits in the last character).
    """
    stripped = segment.rstrip(b"=")
    padding = len(segment) - len(stripped)
    if (
        padding > 2
        or (padding and len(segment) % 4)
        or len(stripped) % 4 == 1
        or _ALPHABET_RUN.fullmatch(stripped) is None
    ):
        raise DecodeError(f"Invalid {name} padding")
    standard = stripped.translate(_URL_TO_STANDARD) + b"=" * (-len(stripped) % 4)
    try:
        decoded = binascii.a2b_base64(standard)
    except binascii.Error as err:  # pragma: no cover - the checks above leave nothing to refuse
        raise DecodeError(f"Invalid {name} padding") from err
    encoded = binascii.b2a_base64(decoded, newline=False).translate(_STANDARD_TO_URL)
    if encoded.rstrip(b"=") != stripped:
        raise DecodeError(f"Invalid {name} padding")
    return decoded


def decoder(options: Options | None = None) -> PyJWT:
    """A ``jwt.PyJWT`` (with decode ``options``) whose segment check is :func:`decode_segment`
    where the fence allows, else plain ``jwt.PyJWT``."""
    if pyjwt_internals_usable():
        from netrun_ws._upstream.pyjwt import SegmentCheckedPyJWT

        return SegmentCheckedPyJWT(options)
    return PyJWT(options)
