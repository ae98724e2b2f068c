"""The ASGI scope's header list with the names and fields most upgrade requests share kept once.

A connection's scope lives as long as the connection, and uvicorn makes new ``bytes`` for every
header name and value of every request: on an idle connection its header list is the largest
single thing the server keeps (about 1 KB). :func:`share_headers` gives back an equal list whose
common names, and whole common fields (``upgrade: websocket``, ``sec-websocket-version: 13``, ...),
are one object per process.
"""

from __future__ import annotations

__all__ = ["share_headers"]

_NAMES: dict[bytes, bytes] = {
    name: name
    for name in (
        b"accept-encoding",
        b"accept-language",
        b"authorization",
        b"cache-control",
        b"connection",
        b"cookie",
        b"host",
        b"origin",
        b"pragma",
        b"sec-websocket-extensions",
        b"sec-websocket-key",
        b"sec-websocket-protocol",
        b"sec-websocket-version",
        b"upgrade",
        b"user-agent",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-real-ip",
    )
}

_FIELDS: dict[tuple[bytes, bytes], tuple[bytes, bytes]] = {
    (_NAMES[name], value): (_NAMES[name], value)
    for name, value in (
        (b"cache-control", b"no-cache"),
        (b"connection", b"Upgrade"),
        (b"connection", b"upgrade"),
        (b"connection", b"keep-alive, Upgrade"),
        (b"pragma", b"no-cache"),
        (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
        (b"sec-websocket-version", b"13"),
        (b"upgrade", b"websocket"),
    )
}


def share_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (an ASGI header list) as an equal new list sharing common names and fields."""
    fields, names = _FIELDS, _NAMES
    return [fields.get(field) or (names.get(field[0], field[0]), field[1]) for field in headers]
