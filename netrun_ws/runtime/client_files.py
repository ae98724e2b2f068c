"""The browser client's files (``netrun_ws/static/client/``) served at ``server.client_path``.

Two fixed routes, not a static directory: nothing else under the prefix can be listed or reached
by a crafted path. The files are read once; an ETag lets browsers revalidate without a download.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from netrun_ws.host import Host

#: File name -> content type, for each file served.
CLIENT_FILES = {
    "netrun-ws.js": "text/javascript; charset=utf-8",
    "netrun-ws.d.ts": "application/typescript; charset=utf-8",
}


def client_file(name: str) -> bytes:
    """The bytes of one of the client's files, as shipped in the package."""
    return resources.files("netrun_ws").joinpath("static", "client", name).read_bytes()


def _file_route(path: str, name: str, content_type: str) -> Route:
    body = client_file(name)
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {
        "ETag": etag,
        # Revalidate every time (a 304 costs nothing), so a server upgrade reaches every page.
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
    }

    async def serve(request: Request) -> Response:
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, headers=headers, media_type=content_type)

    return Route(path, serve, methods=["GET"])


def client_routes(host: Host) -> list[Route]:
    """The client's routes; none when ``server.client_path`` is null."""
    prefix = host.config.server.client_path
    if prefix is None:
        return []
    base = prefix.rstrip("/")
    return [_file_route(f"{base}/{name}", name, kind) for name, kind in CLIENT_FILES.items()]
