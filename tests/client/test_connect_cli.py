"""`netrun-ws connect` driven as a subprocess: stdin lines in, JSON lines out, states on stderr."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.client.helpers import BURST, JWT, chat_config, served, token
from tests.support.cli_server import cli_env


@dataclass
class Session:
    process: asyncio.subprocess.Process

    async def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def message(self, type_: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next stdout message of ``type_`` (each stdout line is one JSON message)."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.process.stdout.readline()
                assert line, "stdout ended"
                message = json.loads(line)
                if message.get("type") == type_:
                    return dict(message)

    async def stderr_line(self, containing: str, timeout: float = 10.0) -> str:
        assert self.process.stderr is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.process.stderr.readline()).decode()
                assert line, f"stderr ended before a line with {containing!r}"
                assert "Traceback" not in line
                if containing in line:
                    return line

    async def end(self, timeout: float = 10.0) -> tuple[int, str]:
        """Close stdin (EOF); the exit code and the rest of stderr."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return await self.exit(timeout)

    async def exit(self, timeout: float = 10.0) -> tuple[int, str]:
        assert self.process.stderr is not None
        async with asyncio.timeout(timeout):
            rest = (await self.process.stderr.read()).decode()
            code = await self.process.wait()
        return code, rest


@contextlib.asynccontextmanager
async def connect(*args: str) -> AsyncIterator[Session]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "netrun_ws",
        "connect",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    try:
        yield Session(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_lines_are_sent_messages_printed_and_bad_json_is_one_line() -> None:
    async with served(chat_config()) as (_, addr), connect(f"ws://{addr}/ws?user_id=alice") as s:
        assert (await s.message("connect"))["user_id"] == "alice"
        await s.send('{"type": "join", "room": "lobby"}')
        assert (await s.message("joined"))["members"] == ["alice"]
        await s.send("{not json")
        assert (await s.stderr_line("error:")).startswith("error: not JSON: ")
        await s.send("[1, 2]")
        assert "a message is a JSON object" in await s.stderr_line("error:")
        await s.send('{"type": "say", "room": "lobby", "text": NaN}')
        assert "strict JSON" in await s.stderr_line("error:")
        await s.send('{"type": "nonsense"}')  # the server's error reply is printed, not fatal
        assert (await s.message("error"))["code"] == "unknown_type"
        await s.send('{"type": "say", "room": "lobby", "text": "still here"}')
        assert (await s.message("said"))["text"] == "still here"
        code, rest = await s.end()
    assert code == 0
    assert "Traceback" not in rest
    assert rest.rstrip().endswith("# closed")


async def test_at_the_end_of_input_what_arrived_before_the_close_is_printed(
    tmp_path: Path,
) -> None:
    # The server writes a burst; stdin ends as its first message is printed. Every message the
    # server wrote precedes its answer to the console's close: all are printed, then "# closed".
    (tmp_path / "burst.py").write_text(BURST)
    config = chat_config(plugins_dir=str(tmp_path), plugins=["burst"])
    async with served(config) as (app, addr), connect(f"ws://{addr}/ws?user_id=erin") as s:
        assert s.process.stdout is not None
        await s.send('{"type": "burst", "count": 1000}')
        first = await s.message("item")
        code, rest = await s.end()
        printed = [json.loads(line) for line in (await s.process.stdout.read()).splitlines()]
        sent = app.state.host.state["burst_sent"]
    assert code == 0
    assert "Traceback" not in rest
    assert rest.rstrip().endswith("# closed")
    assert sent > 100
    assert [first["n"]] + [m["n"] for m in printed] == list(range(sent))


async def test_a_token_file_authenticates_through_the_subprotocol(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(token("carol") + "\n")
    async with (
        served(chat_config(auth=JWT)) as (_, addr),
        connect(f"ws://{addr}/ws", "--token-file", str(token_file), "--subprotocol-auth") as s,
    ):
        assert (await s.message("connect"))["user_id"] == "carol"
        code, _ = await s.end()
    assert code == 0


async def test_message_auth_sends_the_token_as_the_first_message() -> None:
    config = chat_config(auth=JWT, server={"path": "/ws", "first_message_auth": True})
    async with (
        served(config) as (_, addr),
        connect(f"ws://{addr}/ws", "--token", token("dave"), "--message-auth") as s,
    ):
        assert (await s.message("connect"))["user_id"] == "dave"
        code, _ = await s.end()
    assert code == 0


async def test_a_refused_token_exits_with_5_and_one_line() -> None:
    async with served(chat_config(auth=JWT)) as (_, addr):
        async with connect(f"ws://{addr}/ws", "--token", "forged") as s:
            code, rest = await s.exit()
    assert code == 5
    assert "error: closed with 1008 (invalid token)" in rest
    assert "Traceback" not in rest


async def test_ctrl_c_ends_the_session_cleanly() -> None:
    async with served(chat_config()) as (_, addr), connect(f"ws://{addr}/ws?user_id=a") as s:
        await s.message("connect")
        s.process.send_signal(signal.SIGINT)
        code, rest = await s.exit()
    assert code == 0
    assert "Traceback" not in rest


async def test_the_session_reconnects_after_a_drain_and_says_so() -> None:
    first: contextlib.AbstractAsyncContextManager[tuple[Any, str]] | None = served(chat_config())
    assert first is not None
    app, addr = await first.__aenter__()
    try:
        async with connect(f"ws://{addr}/ws?user_id=a") as s:
            await s.stderr_line("# connected")
            await s.message("connect")
            await app.state.host.drain(5.0)
            assert (await s.message("disconnect"))["code"] == 1012
            assert "1012" in await s.stderr_line("# connection lost")
            await first.__aexit__(None, None, None)
            first = None
            port = int(addr.rsplit(":", 1)[1])
            async with served(chat_config(), port=port):
                await s.stderr_line("# connected")
                assert (await s.message("connect"))["user_id"] == "a"
                code, _ = await s.end()
        assert code == 0
    finally:
        if first is not None:
            await first.__aexit__(None, None, None)


async def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = [
        (["http://127.0.0.1:1/ws"], "expected ws://"),
        (["ws://127.0.0.1:1/ws", "--header", "no colon"], "expected 'Name: value'"),
        (["ws://127.0.0.1:1/ws", "--token-file", str(tmp_path / "missing")], "--token-file"),
        (["ws://127.0.0.1:1/ws", "--subprotocol-auth"], "needs --token"),
        (["ws://127.0.0.1:1/ws", "--message-auth"], "needs --token"),
    ]
    for args, expected in cases:
        async with connect(*args) as s:
            code, rest = await s.end()
        assert code == 2, args
        assert expected in rest and len(rest.strip().splitlines()) == 1, rest


async def test_an_unreachable_server_exits_with_5() -> None:
    from tests.support.cli_server import free_port

    async with connect(f"ws://127.0.0.1:{free_port()}/ws") as s:
        code, rest = await s.exit()
    assert code == 5
    assert "error: cannot connect" in rest
    assert "Traceback" not in rest
