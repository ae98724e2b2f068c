"""`netrun-ws typescript`: the declarations compile with `tsc --strict` (the typescript package
from the npm registry) beside a usage file that relies on them being exact; the converter's
subset is checked case by case."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from netrun_ws.cli import main
from netrun_ws.contracts.typescript import ts_type
from tests.contracts.npm_tools import TYPESCRIPT, missing_tool, npm_package

ROOT = Path(__file__).resolve().parents[2]

USAGE = """\
import type {
  ClientMessage, CloseCode, ErrorCode, MessageOf, Say, ServerHandlers, ServerMessage, Welcome,
} from "./netrun_ws";

export function handle(message: ServerMessage): string {
  switch (message.type) {
    case "connect": {
      const welcome: Welcome = message;
      const rooms: string[] = welcome.rooms ?? [];
      const top: number | undefined = welcome.positions?.["room:lobby"]?.offset;
      return `${welcome.session_id} ${rooms.length} ${top ?? 0}`;
    }
    case "say":
      return `${message.room}: ${message.text} @${message.pos?.offset ?? "-"}`;
    case "gap":
      return `${message.channel} ${message.reason} ${message.offset} ${message.epoch}`;
    case "recovered":
      return Object.entries(message.channels).map(([c, p]) => `${c}=${p.replayed}`).join();
    case "error": {
      const code: ErrorCode | string = message.code;
      return code;
    }
    case "delivery_gap":
      return String(message.until - message.since);
    default:
      return message.type;
  }
}

export const handlers: ServerHandlers = {
  say: (message) => { const text: string = message.text; void text; },
  recovered: (message) => { void message.channels; },
};

const join: ClientMessage = { type: "join", room: "lobby" };
const auth: ClientMessage = { type: "auth", token: "t" };
// @ts-expect-error: a say without its text is not a message the server accepts
const broken: ClientMessage = { type: "say", room: "lobby" };
// @ts-expect-error: the server never sends a message of this type
const unknown: ServerMessage = { type: "nosuch" };
const pos = { channel: "c", offset: 1, epoch: "e" };
// @ts-expect-error: a client may not send a channel position
const positioned: Say = { type: "say", room: "r", text: "t", pos };
const said: MessageOf<ServerMessage, "say"> = { type: "say", room: "r", text: "t" };
const restart: CloseCode = 1012;
// @ts-expect-error: not a close code the server uses
const bogus: CloseCode = 1234;
export const used = [join, auth, broken, unknown, positioned, said, restart, bogus];
"""


def tsc() -> Path:
    if shutil.which("node") is None:
        missing_tool("node is not installed (apt-get install nodejs): cannot run tsc")
    return npm_package(TYPESCRIPT) / "typescript" / "bin" / "tsc"


def test_the_declarations_compile_strictly_with_a_usage_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compiler = tsc()
    assert main(["typescript", "--config", str(ROOT / "netrun_ws.yaml")]) == 0
    (tmp_path / "netrun_ws.ts").write_text(capsys.readouterr().out)
    (tmp_path / "usage.ts").write_text(USAGE)
    result = subprocess.run(
        [
            "node",
            str(compiler),
            "--strict",
            "--noEmit",
            "--target",
            "es2020",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            str(tmp_path / "netrun_ws.ts"),
            str(tmp_path / "usage.ts"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_usage_does_not_compile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    compiler = tsc()
    assert main(["typescript", "--config", str(ROOT / "netrun_ws.yaml")]) == 0
    (tmp_path / "netrun_ws.ts").write_text(capsys.readouterr().out)
    (tmp_path / "usage.ts").write_text(
        'import type { Gap } from "./netrun_ws";\n'
        "export const gap: Gap = "
        '{ type: "gap", channel: "c", reason: "lost", offset: 1, epoch: "e" };\n'
    )
    result = subprocess.run(
        [
            "node",
            str(compiler),
            "--strict",
            "--noEmit",
            str(tmp_path / "netrun_ws.ts"),
            str(tmp_path / "usage.ts"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0 and '"lost"' in result.stdout


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, "string"),
        ({"type": "integer"}, "number"),
        ({"const": "join", "type": "string"}, '"join"'),
        ({"enum": ["a", "b", 3]}, '"a" | "b" | 3'),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "string | null"),
        ({"type": ["integer", "null"]}, "number | null"),
        (
            {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            "(string | number)[]",
        ),
        (
            {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}]},
            "[string, boolean]",
        ),
        (
            {"type": "object", "additionalProperties": {"$ref": "#/$defs/Position"}},
            "{ [key: string]: Position }",
        ),
        ({"type": "object"}, "{ [key: string]: unknown }"),
        ({}, "unknown"),
        ({"$ref": "#/components/schemas/Elsewhere"}, "unknown"),
        (
            {
                "type": "object",
                "properties": {"a-b": {"type": "string"}},
                "required": ["a-b"],
                "additionalProperties": False,
            },
            '{\n  "a-b": string;\n}',
        ),
        ({"type": "object", "properties": {"x": {"type": "number"}}}, "{\n  x?: number;\n}"),
        ({"not": {"type": "string"}}, "unknown"),
    ],
)
def test_the_converter(schema: dict[str, Any], expected: str) -> None:
    assert ts_type(schema) == expected
