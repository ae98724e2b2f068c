"""What the host runs: admitting connections, the message loop, delivery and rooms, the HTTP API.

Private to :class:`netrun_ws.host.Host`, which is the API plugins and apps use.
"""

from __future__ import annotations

__all__: list[str] = []
