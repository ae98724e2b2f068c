"""``Client``: one test client of a served app, a thin layer over a ``websockets`` client that
reads JSON with a deadline and asserts what came back.

Kept bare on purpose: it sees every frame and close code as the server sent them. The package's
own client (``netrun_ws.client.Client``, which reconnects and resumes) is
``ServedApp.client()``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

__all__ = ["DEFAULT_TIMEOUT", "Client", "assert_error_reply"]

#: Seconds any wait of the kit lasts before the test fails (a missing reply fails, never hangs).
DEFAULT_TIMEOUT = 5.0


def assert_error_reply(message: Any, code: str | None = None) -> dict[str, Any]:
    """Assert ``message`` is an error reply (``{"type": "error", "code": ...}``), with ``code``
    when given; returns it."""
    assert isinstance(message, dict), f"expected an error reply, got {message!r}"
    assert message.get("type") == "error", f"expected an error reply, got {message!r}"
    if code is not None:
        assert message.get("code") == code, f"expected error code {code!r}, got {message!r}"
    return message


class Client:
    """A connected test client. ``welcome`` is the server's first message (``{"type":
    "connect", ...}``) once read; ``connection_id``/``session_id`` come from it."""

    def __init__(self, websocket: ClientConnection, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.websocket = websocket
        self.timeout = timeout
        self.welcome: dict[str, Any] = {}

    @property
    def connection_id(self) -> str:
        return str(self.welcome["connection_id"])

    @property
    def session_id(self) -> str:
        return str(self.welcome["session_id"])

    @property
    def close_code(self) -> int | None:
        """The close code once the connection closed (None while open)."""
        return self.websocket.close_code

    @property
    def close_reason(self) -> str | None:
        return self.websocket.close_reason

    async def send(self, message: Any) -> None:
        """Send a dict/list (as JSON), a pydantic model (its JSON), or a str/bytes as is."""
        if isinstance(message, BaseModel):
            message = message.model_dump_json()
        elif not isinstance(message, str | bytes):
            message = json.dumps(message)
        await self.websocket.send(message)

    async def recv(self, timeout: float | None = None) -> Any:
        """The next message, decoded from JSON (AssertionError when the server closed first)."""
        try:
            raw = await asyncio.wait_for(self.websocket.recv(), timeout or self.timeout)
        except ConnectionClosed as closed:
            raise AssertionError(f"the server closed the connection: {closed}") from None
        return json.loads(raw)

    async def expect(self, type_: str | None = None, timeout: float | None = None) -> Any:
        """The next message, asserting its ``type`` when given."""
        message = await self.recv(timeout)
        if type_ is not None:
            found = message.get("type") if isinstance(message, dict) else None
            assert found == type_, f"expected a {type_!r} message, got {message!r}"
        return message

    async def skip_until(self, type_: str, timeout: float | None = None) -> dict[str, Any]:
        """Skip messages (pings, broadcasts) until one of ``type_`` arrives; return it."""
        async with asyncio.timeout(timeout or self.timeout):
            while True:
                message = await self.recv()
                if isinstance(message, dict) and message.get("type") == type_:
                    return message

    async def request(self, message: Any, type_: str | None = None) -> Any:
        """Send ``message`` and return the next message (asserting its ``type`` when given)."""
        await self.send(message)
        return await self.expect(type_)

    async def expect_error(self, code: str | None = None) -> dict[str, Any]:
        """The next message, asserted to be an error reply with ``code``."""
        return assert_error_reply(await self.recv(), code)

    async def expect_close(
        self, code: int | None = None, reason: str | None = None, timeout: float | None = None
    ) -> int | None:
        """Wait until the server closes the connection (discarding messages until then) and
        assert its close ``code`` and ``reason`` when given; returns the code."""
        try:
            async with asyncio.timeout(timeout or self.timeout):
                while True:
                    await self.websocket.recv()
        except ConnectionClosed:
            pass
        found = self.websocket.close_code
        assert code is None or found == code, (
            f"expected close code {code}, got {found} ({self.websocket.close_reason!r})"
        )
        if reason is not None:
            assert self.websocket.close_reason == reason, (
                f"expected close reason {reason!r}, got {self.websocket.close_reason!r}"
            )
        return found

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.websocket.close(code, reason)
