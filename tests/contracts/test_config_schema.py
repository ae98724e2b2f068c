"""`netrun-ws schema`: the JSON Schema of netrun_ws.yaml, checked with a real validator
(jsonschema) against the default config, every documented example and known mistakes."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from netrun_ws.cli import main
from netrun_ws.config.reference import ERROR_EXAMPLE
from netrun_ws.contracts.config_schema import config_schema
from netrun_ws.contracts.plugin_options import Found, find_plugins

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "netrun_ws.schema.json"
EXAMPLE_SRC = ROOT / "plugins" / "netrun-ws-example" / "src"
HINT = "# yaml-language-server: $schema=netrun_ws.schema.json"
DOCUMENTED = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
DOCUMENTED.append(ROOT / "plugins" / "netrun-ws-example" / "README.md")
_YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)
#: On the line before a yaml block that is another tool's file (a Traefik config, say).
OTHER_TOOL = re.compile(r"<!-- example: other tool: [^>]+ -->\n\Z")


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def full() -> jsonschema.Draft202012Validator:
    """The schema with the repository's plugins and the example distribution's `example`."""
    sys.path.insert(0, str(EXAMPLE_SRC))
    try:
        import netrun_ws_example
    finally:
        sys.path.remove(str(EXAMPLE_SRC))
    plugins = find_plugins(ROOT / "plugins", with_entry_points=False)
    for slot in plugins.slots.values():
        slot.append(Found("example", netrun_ws_example.Options))
    return validator(config_schema(plugins))


def errors(check: jsonschema.Draft202012Validator, document: Any) -> list[str]:
    return [f"{e.json_path}: {e.message[:200]}" for e in check.iter_errors(document)]


def test_the_shipped_schema_file_is_what_the_command_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["schema", "--no-entry-points", "--config", str(ROOT / "netrun_ws.yaml")])
    assert code == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == json.loads(SCHEMA_FILE.read_text()), (
        "netrun_ws.schema.json is stale: netrun-ws schema --no-entry-points > netrun_ws.schema.json"
    )


def test_the_default_config_carries_the_editor_hint_and_is_valid() -> None:
    text = (ROOT / "netrun_ws.yaml").read_text()
    assert HINT in text.splitlines()[:3]
    check = validator(json.loads(SCHEMA_FILE.read_text()))
    assert errors(check, yaml.safe_load(text)) == []


def documented_examples() -> list[tuple[str, str]]:
    found = []
    for path in DOCUMENTED:
        text = path.read_text()
        for index, match in enumerate(_YAML_BLOCK.finditer(text)):
            if OTHER_TOOL.search(text[: match.start()]):
                continue
            found.append((f"{path.relative_to(ROOT)}#{index}", match[1]))
    return found


def test_few_yaml_blocks_are_marked_as_another_tools() -> None:
    marked = sum(len(re.findall(OTHER_TOOL.pattern[:-4], p.read_text())) for p in DOCUMENTED)
    assert marked <= 3, "a yaml block in the docs is a netrun_ws.yaml unless it says otherwise"


def documents(block: str) -> list[Any]:
    """A block's config; a block listing alternative forms of one key (the key repeated) is one
    document per line."""
    keys = re.findall(r"^([A-Za-z_]+):", block, re.MULTILINE)
    if len(keys) != len(set(keys)):
        return [yaml.safe_load(line) for line in block.splitlines() if line.strip()]
    return [yaml.safe_load(block)]


@pytest.mark.parametrize(("where", "block"), documented_examples(), ids=lambda v: v[:40])
def test_every_documented_example_config_is_valid(
    full: jsonschema.Draft202012Validator, where: str, block: str
) -> None:
    for document in documents(block):
        if block == ERROR_EXAMPLE:  # the doc's example of a report: every mistake is caught
            assert len(errors(full, document)) >= 2, where
        else:
            assert errors(full, document) == [], where


def test_there_are_documented_examples_to_check() -> None:
    assert len(documented_examples()) >= 6
    assert any(block == ERROR_EXAMPLE for _, block in documented_examples())


@pytest.mark.parametrize(
    "document",
    [
        {"server": {"port": "${PORT:-8000}", "log_level": "${LEVEL}"}},
        {"limits": {"messages_per_second": 0, "overflow": "drop_oldest"}},
        {"auth": {"plugin": "jwt", "options": {"secret": "${S}"}}},
        {"heartbeat": None, "reconnect": None, "metrics": None},
        {"metrics": "log", "plugins": ["chat", {"plugin": "mycompany.ws_plugin", "any": 1}]},
        {"plugins": [{"plugin": "example", "motd": "hi"}]},
        {"environments": {"prod": {"heartbeat": {"interval": 15}, "server": {"port": 9}}}},
        {"server": None, "limits": None, "environments": None},
    ],
)
def test_valid_configs_pass(full: jsonschema.Draft202012Validator, document: Any) -> None:
    assert errors(full, document) == []


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({"server": {"prot": 8000}}, "$.server"),
        ({"server": {"port": "eighty"}}, "$.server"),
        ({"server": {"port": 70000}}, "$.server"),
        ({"limits": {"overflow": "explode"}}, "$.limits"),
        ({"auth": {"plugin": "jwt", "secrett": "x"}}, "$.auth"),
        ({"heartbeat": {"plugin": "ping", "interval": "often"}}, "$.heartbeat"),
        ({"auth": None}, "$.auth"),
        ({"auth": {"secret": "x"}}, "$.auth"),
        ({"store": {"plugin": "memory", "connection_ttl": 0}}, "$.store"),
        ({"plugins": [{"plugin": "example", "motdd": "hi"}]}, "$.plugins"),
        ({"plugins": [{"plugin": "chat", "max_rooms_per_connection": -1}]}, "$.plugins"),
        ({"metrics": [{"plugin": "log", "options": {"level": 3}}]}, "$.metrics"),
        ({"environments": {"prod": {"environments": {}}}}, "$.environments"),
        ({"environments": {"prod": {"sever": {}}}}, "$.environments"),
        ({"unknown_key": 1}, "$"),
    ],
)
def test_mistakes_are_caught_where_they_are(
    full: jsonschema.Draft202012Validator, document: Any, where: str
) -> None:
    found = errors(full, document)
    assert found, document
    assert all(error.startswith(where) for error in found), found


def test_a_plugin_that_fails_to_import_is_named_and_the_schema_still_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "broken.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "plugins" / "greet.py").write_text(
        "from pydantic import BaseModel\n\n\nclass Options(BaseModel):\n    greeting: str\n"
    )
    (tmp_path / "netrun_ws.yaml").write_text("plugins_dir: plugins\n")
    assert main(["schema", "--config", str(tmp_path / "netrun_ws.yaml")]) == 0
    captured = capsys.readouterr()
    assert "plugin 'broken' left out of the schema" in captured.err
    assert "RuntimeError: boom" in captured.err
    check = validator(json.loads(captured.out))
    assert errors(check, {"plugins": [{"plugin": "greet", "greeting": "hi"}]}) == []
    assert errors(check, {"plugins": [{"plugin": "greet"}]})  # a required option
    assert errors(check, {"plugins": [{"plugin": "greet", "options": {"greeting": "hi"}}]}) == []


def test_an_unreadable_config_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "netrun_ws.yaml").write_text("server: [unclosed\n")
    assert main(["schema", "--config", str(tmp_path / "netrun_ws.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot read plugins_dir" in err
