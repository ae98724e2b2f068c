"""Run the real ``netrun-ws run`` command in a subprocess on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    process: asyncio.subprocess.Process
    port: int
    output: list[str] = field(default_factory=list)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def text(self) -> str:
        return "".join(self.output)


async def _pump(stream: asyncio.StreamReader, sink: list[str]) -> None:
    while line := await stream.readline():
        sink.append(line.decode(errors="replace"))


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


@contextlib.asynccontextmanager
async def run_cli(
    config: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    ready_timeout: float = 20.0,
    port: int | None = None,
) -> AsyncIterator[RunningServer]:
    """Start ``python -m netrun_ws run --config CONFIG --port FREE`` (or ``port``); yield once
    /readyz is 200."""
    port = port or free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "netrun_ws",
        "run",
        "--config",
        str(config),
        "--port",
        str(port),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=cli_env(env),
        cwd=cwd,
    )
    assert process.stdout is not None
    server = RunningServer(process, port)
    pump = asyncio.create_task(_pump(process.stdout, server.output))
    try:
        async with httpx.AsyncClient() as http:
            deadline = asyncio.get_running_loop().time() + ready_timeout
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"netrun-ws exited {process.returncode}:\n{server.text()}")
                try:
                    if (await http.get(f"http://{server.addr}/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"netrun-ws not ready in {ready_timeout}s:\n{server.text()}")
                await asyncio.sleep(0.1)
        yield server
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        await asyncio.wait_for(pump, 5)
