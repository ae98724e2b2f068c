"""Helpers for attack suites that open raw connections."""

from __future__ import annotations

import asyncio
import socket


async def open_from(source_ip: str, addr: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to ``addr`` ("host:port") from ``source_ip`` (any 127.x.y.z: Linux
    routes the whole loopback block), as a client on another machine would be seen."""
    host, _, port = addr.rpartition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((source_ip, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        return await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise
