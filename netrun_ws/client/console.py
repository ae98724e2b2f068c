"""`netrun-ws connect`: an interactive terminal session on top of the client.

Lines typed on stdin are sent as JSON messages; every message received is printed on stdout as one
JSON line; connection states go to stderr as lines starting with ``#``. Pings are answered,
reconnects happen by the server's policy. EOF (Ctrl-D, the end of a piped file) closes the
connection cleanly once what the server sent before its close reply is printed; Ctrl-C closes it
at once.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from .client import Client
from .events import ClientClosed, State, StateChange

#: Exit codes (docs/cli.md): 0 the session ended (EOF, Ctrl-C); 2 bad arguments; 5 the server
#: refused the connection or ended it for good.
EXIT_OK, EXIT_USAGE, EXIT_CLOSED = 0, 2, 5


class UsageError(Exception):
    """A bad command-line value: one line, exit code 2."""


def parse_headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            raise UsageError(f"--header {value!r}: expected 'Name: value'")
        headers[name.strip()] = content.strip()
    return headers


def read_token_file(path: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(
            f"--token-file {path}: {getattr(error, 'strerror', None) or error}"
        ) from None
    if not token:
        raise UsageError(f"--token-file {path}: the file is empty")
    return token


def client_options(
    url: str,
    *,
    token: str | None,
    token_file: str | None,
    headers: list[str],
    subprotocol_auth: bool,
    message_auth: bool = False,
) -> dict[str, Any]:
    """The Client's arguments for the command's flags; raises UsageError."""
    if urlsplit(url).scheme not in ("ws", "wss"):
        raise UsageError(f"URL {url!r}: expected ws://HOST:PORT/PATH or wss://...")
    if token is not None and token_file is not None:
        raise UsageError("give --token or --token-file, not both")
    options: dict[str, Any] = {"headers": parse_headers(headers)}
    if token_file is not None:
        options["token"] = read_token_file(token_file)
        # A token file that is rewritten before expiry renews the connection's credentials.
        options["refresh_token"] = lambda: read_token_file(token_file)
    elif token is not None:
        options["token"] = token
    if subprotocol_auth:
        if "token" not in options:
            raise UsageError("--subprotocol-auth needs --token or --token-file")
        options["token_transport"] = "subprotocol"
    elif message_auth:
        if "token" not in options:
            raise UsageError("--message-auth needs --token or --token-file")
        options["token_transport"] = "message"
    return options


class _Lines:
    """stdin lines as an asyncio queue, read by a daemon thread (which never holds up exit).
    None marks the end of input."""

    def __init__(self, stream: TextIO) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._stream = stream
        threading.Thread(target=self._read, name="netrun-ws connect stdin", daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self._stream:
                self._loop.call_soon_threadsafe(self.queue.put_nowait, line)
        except (OSError, ValueError, UnicodeDecodeError):
            pass  # stdin closed or unreadable: the same as its end
        finally:
            try:
                self._loop.call_soon_threadsafe(self.queue.put_nowait, None)
            except RuntimeError:
                pass  # the loop is already closed: the session is over anyway


def _describe(change: StateChange, url: str, user: object) -> str:
    if change.state is State.CONNECTING:
        return f"# connecting to {url}"
    if change.state is State.CONNECTED:
        who = f" as {user}" if isinstance(user, str) else ""
        return f"# connected{who}" + (" (session resumed)" if change.resumed else "")
    if change.state is State.RECONNECTING:
        if change.code is None:
            lost = change.reason
        elif change.code < 1000:  # a refused handshake: an HTTP status
            lost = f"refused with HTTP {change.code} {change.reason}".rstrip()
        else:
            lost = f"{change.code} {change.reason}".rstrip()
        wait = f"reconnecting in {change.delay:.1f} s (attempt {change.attempt})"
        return f"# connection lost ({lost}); {wait}"
    return "# closed" + (f": {change.reason}" if change.reason else "")


async def run_console(
    url: str,
    options: Mapping[str, Any],
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """The interactive session; returns the exit code."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parts = urlsplit(url)
    shown = urlunsplit(parts._replace(query="", fragment=""))  # no user_id or token echoed

    def show_state(change: StateChange) -> None:
        if change.state is not State.CLOSED:
            user = (client.welcome or {}).get("user_id")
            print(_describe(change, shown, user), file=err, flush=True)

    client = Client(url, on_state=show_state, **options)
    lines = _Lines(stdin or sys.stdin)
    try:
        await client.start()
    except ClientClosed as closed:
        print(f"error: {closed.reason}", file=err, flush=True)
        return EXIT_CLOSED
    printer = asyncio.create_task(_print_messages(client, out))
    sender = asyncio.create_task(_send_lines(client, lines, err))
    try:
        await asyncio.wait({printer, sender}, return_when=asyncio.FIRST_COMPLETED)
        if not printer.done():
            # The end of input: close with the handshake, and print what the server sent
            # before its answer to the close frame before saying "closed". The client's close
            # timeout bounds the wait; iteration ends once that is read.
            await client.close()
            await asyncio.wait({printer})
        ended = printer.exception()
        if isinstance(ended, ClientClosed):
            print(f"error: {ended.reason}", file=err, flush=True)
            return EXIT_CLOSED
        return EXIT_OK
    finally:
        sender.cancel()
        await client.close()
        printer.cancel()
        await asyncio.gather(printer, sender, return_exceptions=True)
        print("# closed", file=err, flush=True)


async def _print_messages(client: Client, out: TextIO) -> None:
    async for message in client:
        data = message if isinstance(message, dict) else message.model_dump(mode="json")
        print(json.dumps(data, ensure_ascii=False, separators=(",", ":")), file=out, flush=True)


async def _send_lines(client: Client, lines: _Lines, err: TextIO) -> None:
    while True:
        line = await lines.queue.get()
        if line is None:
            return
        text = line.strip()
        if not text:
            continue
        try:
            message = json.loads(text)
        except ValueError as error:
            print(f"error: not JSON: {error}", file=err, flush=True)
            continue
        if not isinstance(message, dict):
            print('error: a message is a JSON object, e.g. {"type": "ping"}', file=err, flush=True)
            continue
        try:
            await client.send(message)
        except TypeError as error:  # NaN, Infinity, 1e400: no strict JSON form
            print(f"error: {error}", file=err, flush=True)
