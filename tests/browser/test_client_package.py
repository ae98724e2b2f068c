"""The browser client as shipped: the served files are the package's, the npm package is complete
and in step with the Python version, and its TypeScript declarations compile against real usage.

npm comes from the system; without it these tests skip loudly on a developer box and fail under
CI (`CI` set), like a missing Chromium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun_ws import create_app
from netrun_ws.cli import main
from netrun_ws.config import ConfigError
from netrun_ws.runtime.client_files import client_file
from tests.host.helpers import base_config
from tests.support.server import serve

ROOT = Path(__file__).resolve().parents[2]
CLIENT_DIR = ROOT / "netrun_ws" / "static" / "client"

USAGE = """
import { NetrunClient, backoffDelay, closeAction } from "netrun-ws-client";
import type { Gap, ServerMessage } from "netrun-ws-client";

const client = new NetrunClient("ws://127.0.0.1:8000/ws", {
  token: async () => "a.jwt.token",
  params: { user_id: "alice" },
  reconnect: { initial_delay: 0.5 },
  maxRefusals: 2,
});
const stop: () => void = client.on("message", (message: ServerMessage) => {
  const offset: number | undefined = message.pos?.offset;
  console.log(message.type, offset);
});
client.on("gap", (gap: Gap) => console.log(gap.channel, gap.reason));
client.on("state", ({ state, delay }) => console.log(state === "failed", delay));
client.on("welcome", (welcome) => console.log(welcome.session_id, welcome.positions));
const sent: boolean = client.connect().send({ type: "join", room: "lobby" });
const action: "stop" | "fail" | "reauth" | "backoff" | "prompt" = closeAction(1012);
const seconds: number = backoffDelay(client.policy, 1, Math.random, action);
console.log(sent, action, seconds, client.positions.get("room:lobby")?.epoch);
stop();
client.close();
// @ts-expect-error: a message listener gets the message, not a number
client.on("message", (message: number) => message);
// @ts-expect-error: there is no such event
client.on("nonsense", () => undefined);
"""


def npm() -> str:
    path = shutil.which("npm")
    if path is None:
        message = "npm is not installed (apt-get install npm): the npm package cannot be checked"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
async def client_app() -> Any:
    return create_app(base_config())


async def test_the_server_serves_the_packaged_client_files(client_app: Any) -> None:
    async with serve(client_app) as addr, httpx.AsyncClient(base_url=f"http://{addr}") as http:
        script = await http.get("/client/netrun-ws.js")
        types = await http.get("/client/netrun-ws.d.ts")
        again = await http.get(
            "/client/netrun-ws.js", headers={"If-None-Match": script.headers["etag"]}
        )
    assert script.status_code == 200
    assert (
        script.content == client_file("netrun-ws.js") == (CLIENT_DIR / "netrun-ws.js").read_bytes()
    )
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["cache-control"] == "no-cache"
    assert script.headers["x-content-type-options"] == "nosniff"
    assert types.content == (CLIENT_DIR / "netrun-ws.d.ts").read_bytes()
    assert types.headers["content-type"].startswith("application/typescript")
    assert (again.status_code, again.content) == (304, b"")


@pytest.mark.parametrize(
    "path",
    [
        "/client/",
        "/client",
        "/client/package.json",
        "/client/README.md",
        "/client/../app.py",
        "/client/%2e%2e/app.py",
        "/client/netrun-ws.js%00",
    ],
)
async def test_nothing_else_under_the_client_path_is_served(client_app: Any, path: str) -> None:
    async with serve(client_app) as addr, httpx.AsyncClient(base_url=f"http://{addr}") as http:
        answer = await http.get(path, follow_redirects=True)
    assert answer.status_code == 404, (path, answer.status_code)


async def test_the_client_path_moves_or_turns_off_the_files() -> None:
    moved = create_app(base_config(server={"path": "/ws", "client_path": "/static/js/"}))
    off = create_app(base_config(server={"path": "/ws", "client_path": None}))
    async with serve(moved) as addr, httpx.AsyncClient(base_url=f"http://{addr}") as http:
        assert (await http.get("/static/js/netrun-ws.js")).status_code == 200
        assert (await http.get("/client/netrun-ws.js")).status_code == 404
    async with serve(off) as addr, httpx.AsyncClient(base_url=f"http://{addr}") as http:
        assert (await http.get("/client/netrun-ws.js")).status_code == 404


def test_a_client_path_that_is_no_url_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"server\.client_path: .*must be a URL path"):
        create_app(base_config(server={"client_path": "client"}))


def test_the_npm_package_version_follows_the_python_package() -> None:
    python_version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    package = json.loads((CLIENT_DIR / "package.json").read_text())
    assert package["version"] == python_version
    assert (
        f'export const VERSION = "{python_version}";' in (CLIENT_DIR / "netrun-ws.js").read_text()
    )


def test_npm_pack_ships_the_module_its_types_and_readme(tmp_path: Path) -> None:
    packed = run([npm(), "pack", "--dry-run", "--json"], CLIENT_DIR)
    assert packed.returncode == 0, packed.stderr
    files = {entry["path"] for entry in json.loads(packed.stdout)[0]["files"]}
    assert files == {"package.json", "README.md", "netrun-ws.js", "netrun-ws.d.ts"}


@pytest.fixture(scope="module")
def typescript(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory with TypeScript installed from the npm registry and this client as a package."""
    where = tmp_path_factory.mktemp("tsc")
    installed = run([npm(), "install", "--no-audit", "--no-fund", "typescript@5"], where)
    if installed.returncode != 0:
        pytest.fail(f"npm install typescript failed: {installed.stderr[-2000:]}")
    shutil.copytree(CLIENT_DIR, where / "node_modules" / "netrun-ws-client")
    yield where


def tsc(where: Path, source: str) -> subprocess.CompletedProcess[str]:
    (where / "usage.ts").write_text(source)
    options = ["--noEmit", "--strict", "--module", "nodenext", "--target", "es2022"]
    return run([str(where / "node_modules" / ".bin" / "tsc"), *options, "usage.ts"], where)


def test_the_type_declarations_compile_against_usage(typescript: Path) -> None:
    compiled = tsc(typescript, USAGE)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr


def test_the_type_declarations_catch_a_misuse(typescript: Path) -> None:
    # The check above can fail: a wrong call is refused (the declarations are really read).
    compiled = tsc(typescript, USAGE.replace("// @ts-expect-error: there is no such event\n", ""))
    assert compiled.returncode != 0
    assert "nonsense" in compiled.stdout


TYPED_USAGE = """
import { NetrunClient } from "netrun-ws-client";
import type { ClientMessage, ServerMessage } from "./netrun_ws";

const client = new NetrunClient<ServerMessage, ClientMessage>("ws://127.0.0.1:8000/ws");
client.on("message", (message) => {
  if (message.type === "say") {
    const line: string = `${message.room}: ${message.text} @${message.pos?.offset ?? "-"}`;
    console.log(line);
  }
  // @ts-expect-error: the welcome is a "welcome" event, never a "message"
  if (message.type === "connect") console.log(message);
});
client.on("welcome", (welcome) => console.log(welcome.session_id));
client.send({ type: "join", room: "lobby" });
// @ts-expect-error: a say without its text is not a message the server accepts
client.send({ type: "say", room: "lobby" });
// @ts-expect-error: a message listener of this client gets its server's messages
client.on("message", (message: number) => message);
"""


def test_the_client_is_typed_with_the_servers_declarations(
    typescript: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each @ts-expect-error must meet its error (else TS2578): the typing really applies.
    assert main(["typescript", "--config", str(ROOT / "netrun_ws.yaml")]) == 0
    (typescript / "netrun_ws.ts").write_text(capsys.readouterr().out)
    compiled = tsc(typescript, TYPED_USAGE)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr


def test_the_declared_handled_types_are_the_modules() -> None:
    declared = (CLIENT_DIR / "netrun-ws.d.ts").read_text()
    union = re.search(r"^export type HandledType = (.+);$", declared, re.MULTILINE)
    assert union is not None
    assert re.findall(r'"(\w+)"', union[1]) == evaluate_module("netrun.HANDLED_TYPES")


def node() -> str:
    path = shutil.which("node")
    if path is None:
        message = "node is not installed (apt-get install nodejs): the module cannot be imported"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def evaluate_module(expression: str) -> Any:
    """``expression`` evaluated by Node with the module imported as ``netrun``."""
    script = (
        f"import * as netrun from {json.dumps((CLIENT_DIR / 'netrun-ws.js').as_uri())};\n"
        f"console.log(JSON.stringify({expression}));"
    )
    done = run([node(), "--input-type=module", "-e", script], ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def documented_close_actions() -> dict[int, str]:
    """docs/clients.md's close-code table: code -> action (ranges expanded)."""
    text = (ROOT / "docs" / "clients.md").read_text()
    section = text.split("### Reconnecting: the close-code table", 1)[1].split("\n\n**", 1)[0]
    actions: dict[int, str] = {}
    for row in section.splitlines():
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if len(cells) != 2 or not cells[0][:1].isdigit():
            continue
        action = cells[1].split(":")[0].split(" ")[0]
        for low, high in re.findall(r"\b(\d{4})(?:-(\d{4}))?\b", cells[0]):
            for code in range(int(low), int(high or low) + 1):
                actions[code] = action
    return actions


def test_the_documented_close_code_table_is_the_modules() -> None:
    documented = documented_close_actions()
    codes = [*sorted(documented), 1004, 4200, 4999]  # and some undocumented ones: backoff
    actual = evaluate_module(f"{codes}.map((code) => netrun.closeAction(code))")
    assert dict(zip(codes, actual, strict=True)) == {
        **documented,
        1004: "backoff",
        4200: "backoff",
        4999: "backoff",
    }
    assert len(documented) > 100  # the 4000-4099 range was read


def test_the_backoff_schedule_follows_the_policy() -> None:
    policy = {
        "initial_delay": 1,
        "max_delay": 5,
        "max_attempts": 0,
        "backoff_multiplier": 2,
        "jitter": "none",
    }
    delays = evaluate_module(
        f"[1, 2, 3, 4, 10].map((n) => netrun.backoffDelay({json.dumps(policy)}, n))"
        f".concat([netrun.backoffDelay({{...{json.dumps(policy)}, jitter: 'equal'}}, 2, () => 0),"
        f" netrun.backoffDelay({json.dumps(policy)}, 1, () => 0.5, 'prompt'),"
        f" netrun.backoffDelay({json.dumps(policy)}, 2, () => 0.5, 'prompt')])"
    )
    assert delays == [1, 2, 4, 5, 5, 1, 0.25, 2]


def test_the_client_logic_against_a_fake_socket() -> None:
    # Resume URLs, duplicate drops, gaps and the close-code table without a browser or server:
    # tests/browser/client_logic.test.mjs under Node's test runner.
    done = run([node(), "--test", "tests/browser/client_logic.test.mjs"], ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout and "# pass 8" in done.stdout


#: What the docs' browser examples take from the page around them (an app's own functions).
DOC_EXAMPLE_PAGE = """\
declare function showState(state: string, code?: number, delay?: number): void;
declare function render(message: object): void;
declare function refetch(channel: string | null): void;  // null: every channel
declare function rejoinRooms(): void;
declare const socket: WebSocket;
"""
_DOC_BLOCK = re.compile(r"^```(js|ts)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def doc_browser_examples() -> list[tuple[str, str]]:
    """(where, code) of every ```js and ```ts block in README.md and docs/."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, match in enumerate(_DOC_BLOCK.finditer(page.read_text()), 1):
            found.append((f"{page.relative_to(ROOT)} block {number}", match[2]))
    return found


def test_the_docs_browser_examples_compile(
    typescript: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each example as a page would hold it, type-checked (tsc --strict) against the client's
    # declarations and the default config's `netrun-ws typescript` output: a renamed event, a
    # wrong argument or a message type the server does not have fails here.
    assert main(["typescript", "--config", str(ROOT / "netrun_ws.yaml")]) == 0
    (typescript / "netrun_ws.ts").write_text(capsys.readouterr().out)
    examples = doc_browser_examples()
    assert len(examples) >= 3, examples  # the clients.md and cli.md examples at least
    for where, code in examples:
        source = code.replace('"/client/netrun-ws.js"', '"netrun-ws-client"')
        compiled = tsc(typescript, DOC_EXAMPLE_PAGE + "export {};\n" + source)
        assert compiled.returncode == 0, f"{where}:\n{code}\n{compiled.stdout}{compiled.stderr}"
