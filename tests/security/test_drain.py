"""Graceful drain: SIGTERM with 1,000 connected clients against the real ``netrun-ws run``.

Every client gets close code 1012 (service restart; 1001 is also documented), none sees 1006,
the process exits within ``server.drain_timeout``, and every session's state (its rooms) is
saved in a real Redis: a second server sharing that Redis resumes sampled sessions.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from netrun_ws.codes import CloseCode
from tests.support.cli_server import run_cli
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 1000
#: Every JOIN_EVERY-th client joins a room of its own before the drain.
JOIN_EVERY = 4
#: Clients reconnected to the second server to check their saved state.
SAMPLE = 120
DRAIN_TIMEOUT = 10.0
#: Sockets this test holds at once: clients, plus the servers' own, plus slack.
NEEDED_FILES = 3 * CLIENTS + 500


def server_config(redis_url: str) -> dict[str, Any]:
    return {
        "server": {"path": "/ws", "allowed_origins": [], "drain_timeout": DRAIN_TIMEOUT},
        "limits": {"max_connections_per_ip": 2 * CLIENTS},
        "auth": {"plugin": "anonymous"},
        "store": {"plugin": "redis", "url": redis_url},
        "heartbeat": {"plugin": "ping", "interval": 600, "timeout": 1800},
        "protocol": {"plugin": "json"},
        "metrics": [],
        "plugins_dir": str(ROOT / "plugins"),
        "plugins": ["chat"],
    }


def raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = NEEDED_FILES if hard == resource.RLIM_INFINITY else min(NEEDED_FILES, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # inherited by the servers
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert soft == resource.RLIM_INFINITY or soft >= NEEDED_FILES, (
        f"open-files limit {soft} < {NEEDED_FILES}: raise the hard limit (ulimit -Hn)"
    )


async def recv_json(client: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(client.recv(), timeout))
    return message


async def open_client(addr: str, query: str) -> tuple[ClientConnection, dict[str, Any]]:
    client = await connect(f"ws://{addr}/ws?{query}", ping_interval=None, open_timeout=20)
    welcome = await recv_json(client)
    assert welcome["type"] == "connect", welcome
    return client, welcome


async def join(client: ClientConnection, room: str) -> None:
    await client.send(json.dumps({"type": "join", "room": room}))
    reply = await recv_json(client)
    assert reply == {"type": "joined", "room": room, "members": [reply["members"][0]]}, reply


async def close_code_after_drain(client: ClientConnection, timeout: float) -> int:
    """The close code this client received (1006 when the TCP connection just ended)."""
    await asyncio.wait_for(client.wait_closed(), timeout)
    code = client.close_code
    assert code is not None
    return code


@pytest.mark.timeout(120)
async def test_sigterm_with_1000_clients_closes_each_with_1012_and_saves_sessions(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    raise_open_files_limit()
    config = tmp_path / "netrun_ws.yaml"
    config.write_text(json.dumps(server_config(redis_server.url)))
    sessions: dict[int, str] = {}
    clients: list[ClientConnection] = []
    loop = asyncio.get_running_loop()
    try:
        async with run_cli(config, env={"PYTHONUNBUFFERED": "1"}) as first:
            for start in range(0, CLIENTS, 100):
                opened = await asyncio.gather(
                    *(
                        open_client(first.addr, f"user_id=user-{i}")
                        for i in range(start, min(start + 100, CLIENTS))
                    )
                )
                for offset, (client, welcome) in enumerate(opened):
                    clients.append(client)
                    sessions[start + offset] = welcome["session_id"]
            await asyncio.gather(
                *(join(clients[i], f"room-{i}") for i in range(0, CLIENTS, JOIN_EVERY))
            )

            signalled = loop.time()
            first.process.send_signal(signal.SIGTERM)
            codes = await asyncio.gather(
                *(close_code_after_drain(client, DRAIN_TIMEOUT + 5) for client in clients)
            )
            exit_status = await asyncio.wait_for(first.process.wait(), DRAIN_TIMEOUT + 5)
            drained_in = loop.time() - signalled
            log = first.text()

        print(f"close codes {Counter(codes)}, exited {exit_status} after {drained_in:.2f}s")
        assert set(codes) <= {CloseCode.SERVICE_RESTART, CloseCode.GOING_AWAY}, Counter(codes)
        assert exit_status in (0, -signal.SIGTERM), log[-3000:]
        assert drained_in <= DRAIN_TIMEOUT, drained_in
        assert "Traceback" not in log and "session store failed" not in log, log[-3000:]

        # A second server on the same Redis resumes the sessions, rooms included.
        sample = sorted({*range(0, CLIENTS, CLIENTS // SAMPLE), CLIENTS - 1})
        async with run_cli(config, env={"PYTHONUNBUFFERED": "1"}) as second:
            resumed = await asyncio.gather(
                *(
                    open_client(second.addr, f"user_id=user-{i}&session_id={sessions[i]}")
                    for i in sample
                )
            )
            for i, (client, welcome) in zip(sample, resumed, strict=True):
                assert welcome["resumed"] is True, (i, welcome)
                assert welcome["session_id"] == sessions[i]
                rooms = [f"room-{i}"] if i % JOIN_EVERY == 0 else []
                assert welcome["rooms"] == rooms, (i, welcome)
                await client.close()
        assert "Traceback" not in second.text(), second.text()[-3000:]
    finally:
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
