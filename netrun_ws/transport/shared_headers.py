"""The ASGI scope's header list with the names and fields most upgrade requests share kept once.

A connection's scope lives as long as the connection, and uvicorn makes new ``bytes`` for every
header name and value of every request: on an idle connection its header list is the largest
single thing the server keeps (about 1 KB). :func:`share_headers` gives back an equal list whose
common names, and whole common fields (``upgrade: websocket``, ``sec-websocket-version: 13``, ...),
are one object per process. So is a server's own ``host`` field (every client of a server sends
the same), once a connection that sent it was accepted (:func:`learn_field`).
"""

from __future__ import annotations

__all__ = ["learn_field", "share_headers"]

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


#: Whole fields learned from accepted connections (a server's ``host``), at most 64: only an
#: accepted connection adds one, so made-up hosts cannot crowd out the real ones.
_LEARNED: dict[tuple[bytes, bytes], tuple[bytes, bytes]] = {}


def share_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (an ASGI header list, or the fields httptools read: values with the spaces
    and tabs it leaves at their end, which are stripped) as an equal new list sharing common
    names and fields."""
    fields, learned, names = _FIELDS, _LEARNED, _NAMES
    return [
        fields.get(field)
        or learned.get(field)
        or (names.get(field[0], field[0]), field[1].strip(b" \t"))
        for field in headers
    ]


def learn_field(field: object) -> None:
    """Keep ``field``, the first of an accepted connection's headers, for later connections'
    lists if it is a ``host`` field (where nearly every client puts it)."""
    if type(field) is tuple and len(field) == 2 and field[0] == b"host" and field not in _LEARNED:
        name, value = field
        if type(name) is bytes and type(value) is bytes and len(_LEARNED) < 64:
            _LEARNED[field] = field
