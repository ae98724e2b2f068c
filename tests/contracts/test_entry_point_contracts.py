"""The contracts see an installed entry-point plugin: its options in `schema`, its message types
in `asyncapi` and `typescript` (the example distribution, pip-installed into a temporary
directory as in tests/cli/test_entry_point_plugin.py)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from tests.cli.test_entry_point_plugin import example_site, netrun_ws, with_site, write_config

__all__ = ["example_site"]  # the fixture, shared with the CLI tests


def test_schema_holds_the_entry_points_options_unless_left_out(
    tmp_path: Path, example_site: Path
) -> None:
    config = write_config(tmp_path, "plugins_dir: null\n")
    env = with_site(example_site)
    result = netrun_ws("schema", "--config", str(config), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    check = jsonschema.Draft202012Validator(json.loads(result.stdout))
    assert check.is_valid({"plugins": [{"plugin": "example", "motd": "hello"}]})
    assert not check.is_valid({"plugins": [{"plugin": "example", "motd": 3}]})
    assert not check.is_valid({"plugins": [{"plugin": "example", "mtod": "hello"}]})
    args = ("schema", "--config", str(config), "--no-entry-points")
    left_out = netrun_ws(*args, cwd=tmp_path, env=env)
    assert left_out.returncode == 0, left_out.stderr
    assert '"example"' not in left_out.stdout


def test_asyncapi_and_typescript_hold_the_entry_points_message_types(
    tmp_path: Path, example_site: Path
) -> None:
    config = write_config(tmp_path, "plugins_dir: null\nplugins: [example]\n")
    env = with_site(example_site)
    asyncapi = netrun_ws("asyncapi", "--config", str(config), cwd=tmp_path, env=env)
    assert asyncapi.returncode == 0, asyncapi.stderr
    messages = json.loads(asyncapi.stdout)["components"]["messages"]
    assert {"Echo", "Echo_delivered"} <= set(messages)
    typescript = netrun_ws("typescript", "--config", str(config), cwd=tmp_path, env=env)
    assert typescript.returncode == 0, typescript.stderr
    assert "export interface Echo {" in typescript.stdout
    assert "| Delivered<Echo>" in typescript.stdout
