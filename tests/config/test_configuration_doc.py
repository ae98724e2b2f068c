"""docs/configuration.md is generated, current, complete, and covers the shipped netrun_ws.yaml."""

from __future__ import annotations

import difflib
import importlib
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from netrun_ws.config import (
    ConfigError,
    ConfigFile,
    LimitsConfig,
    LoadedConfig,
    ServerConfig,
    SlotConfig,
    load_config,
    load_config_from_dict,
)
from netrun_ws.config.reference import (
    ENVIRONMENT_EXAMPLE,
    ERROR_EXAMPLE,
    REGENERATE_COMMAND,
    SLOTS_HEADING,
    TOP_LEVEL_HEADING,
    plugin_heading,
    render_reference,
)
from netrun_ws.config.slot_table import SLOTS
from netrun_ws.plugins.loading import BUILTINS
from netrun_ws.plugins.slots import slot_entries

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
SHIPPED_CONFIG = ROOT / "netrun_ws.yaml"
LIST_SLOTS = tuple(slot.name for slot in SLOTS if slot.many)

_HEADING = re.compile(r"^#{1,6} (.+)$")
_KEY_ROW = re.compile(r"^\| `([^`]+)` \|")


def documented_keys(markdown: str) -> dict[str, set[str]]:
    """Heading -> the keys of the table rows under it (``| `key` | ...``)."""
    sections: dict[str, set[str]] = {}
    current: set[str] = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (heading := _HEADING.match(line)):
            current = sections.setdefault(heading.group(1), set())
        elif not in_code and (row := _KEY_ROW.match(line)):
            current.add(row.group(1))
    return sections


def input_keys(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def builtin_models() -> dict[str, type[BaseModel]]:
    """Heading -> the Options model of every built-in plugin, found independently of the doc."""
    models: dict[str, type[BaseModel]] = {}
    for slot, plugins in BUILTINS.items():
        for name, module_path in plugins.items():
            model = importlib.import_module(module_path).Options
            assert issubclass(model, BaseModel), module_path
            models[plugin_heading(slot, name)] = model
    return models


def all_models() -> dict[str, type[BaseModel]]:
    config_models: dict[str, type[BaseModel]] = {
        TOP_LEVEL_HEADING: ConfigFile,
        "server": ServerConfig,
        "limits": LimitsConfig,
        SLOTS_HEADING: SlotConfig,
    }
    return {**config_models, **builtin_models()}


@pytest.fixture(scope="module")
def doc_text() -> str:
    if not DOC.is_file():
        pytest.fail(f"docs/configuration.md is missing; generate it with: {REGENERATE_COMMAND}")
    return DOC.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- generated and current


def test_the_doc_is_exactly_what_the_generator_produces(doc_text: str) -> None:
    expected = render_reference()
    if doc_text != expected:
        diff = difflib.unified_diff(
            doc_text.splitlines(),
            expected.splitlines(),
            "docs/configuration.md",
            "generated",
            n=1,
            lineterm="",
        )
        shown = "\n".join(list(diff)[:40])
        pytest.fail(
            "docs/configuration.md is out of date with the config models; regenerate it with:\n"
            f"    {REGENERATE_COMMAND}\n{shown}"
        )


def test_the_regenerate_command_prints_the_reference() -> None:
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "netrun_ws.config.reference"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout.decode("utf-8") == render_reference()


# --------------------------------------------------------------------------- complete


@pytest.mark.parametrize("heading", sorted(all_models()))
def test_every_field_of_every_model_has_a_row(doc_text: str, heading: str) -> None:
    sections = documented_keys(doc_text)
    assert heading in sections, f"no section '{heading}' in docs/configuration.md"
    assert sections[heading] == input_keys(all_models()[heading])


@pytest.mark.parametrize("heading", sorted(all_models()))
def test_every_field_has_a_description(heading: str) -> None:
    model = all_models()[heading]
    missing = [name for name, field in model.model_fields.items() if not field.description]
    assert not missing, f"{model.__module__}.{model.__qualname__}: no Field description: {missing}"


def test_every_slot_links_to_each_of_its_builtins(doc_text: str) -> None:
    rows = {
        row.group(1): line
        for line in doc_text.splitlines()
        if (row := _KEY_ROW.match(line)) and "[`" in line
    }
    for slot, plugins in BUILTINS.items():
        for name in plugins:
            anchor = plugin_heading(slot, name).replace(": ", "-")
            assert f"[`{name}`](#{anchor})" in rows[slot], (slot, name)


def test_option_rows_hold_no_raw_html_or_stray_pipes(doc_text: str) -> None:
    headings = all_models()
    current = ""
    for line in doc_text.splitlines():
        if heading := _HEADING.match(line):
            current = heading.group(1)
        elif current in headings and _KEY_ROW.match(line):
            # Four columns: key, type, default, description.
            outside_code = re.sub(r"`[^`]*`", "", line)
            assert not re.search(r"<[A-Za-z/]", outside_code), line
            assert line.count("|") - line.count("\\|") == 5, line


# --------------------------------------------------------------------------- the examples are true


def test_the_environment_example_merges_as_documented() -> None:
    url = "redis://127.0.0.1:6379/0"
    loaded = load_config_from_dict(
        yaml.safe_load(ENVIRONMENT_EXAMPLE), env="production", environ={"REDIS_URL": url}
    )
    store, heartbeat = loaded.config.store, loaded.config.heartbeat
    assert (store.plugin, store.options) == ("redis", {"url": url})
    assert heartbeat is not None
    assert (heartbeat.plugin, heartbeat.options) == ("ping", {"interval": 15, "timeout": 90})


def test_the_error_example_is_what_the_cli_reports_with_exit_code_2(
    doc_text: str, tmp_path: Path
) -> None:
    (tmp_path / "netrun_ws.yaml").write_text(ERROR_EXAMPLE, encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if k not in ("JWT_SECRET", "NETRUN_WS_ENV")}
    done = subprocess.run(
        [sys.executable, "-m", "netrun_ws", "check", "--config", "netrun_ws.yaml"],
        cwd=tmp_path,
        env={**environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    report = doc_text.split(ERROR_EXAMPLE.rstrip("\n") + "\n```\n\n```\n", 1)[1].split("\n```")[0]
    documented = report.splitlines()
    assert len(documented) == 4
    for line in documented:
        assert line in done.stderr.splitlines()


# --------------------------------------------------------------------------- the shipped config


def check_builtin_options(loaded: LoadedConfig) -> None:
    """Validate each built-in slot's options with its plugin's model, as the host does."""
    for entry in slot_entries(loaded.config):
        module = BUILTINS.get(entry.slot or "", {}).get(entry.name)
        if module is not None:
            model = importlib.import_module(module).Options
            loaded.validate_options(entry.key_path, model, entry.options)


def test_the_shipped_config_loads_without_an_environment() -> None:
    loaded = load_config(SHIPPED_CONFIG, environ={})
    assert loaded.env is None
    assert loaded.config.auth.plugin == "anonymous"
    assert loaded.config.server.host == "127.0.0.1"
    assert loaded.plugins_dir == ROOT / "plugins"
    check_builtin_options(loaded)


def test_the_shipped_config_loads_in_production() -> None:
    environ = {"NETRUN_WS_JWT_SECRET": "a-test-secret"}
    loaded = load_config(SHIPPED_CONFIG, env="production", environ=environ)
    assert loaded.env == "production"
    auth = loaded.config.auth
    assert (auth.plugin, auth.options["secret"]) == ("jwt", "a-test-secret")
    assert loaded.config.server.host == "0.0.0.0"
    assert loaded.config.server.allowed_origins == ["https://example.com"]
    check_builtin_options(loaded)


def test_the_status_page_is_on_locally_and_off_in_production_and_by_default() -> None:
    # What README.md ("Watch it") and docs/security.md promise about the `status` sink.
    def sinks(loaded: LoadedConfig) -> list[str]:
        return [sink.plugin for sink in loaded.config.metrics]

    assert "status" in sinks(load_config(SHIPPED_CONFIG, environ={}))
    environ = {"NETRUN_WS_JWT_SECRET": "a-test-secret"}
    assert "status" not in sinks(load_config(SHIPPED_CONFIG, env="production", environ=environ))
    assert "status" not in sinks(load_config_from_dict({}))  # a config that lists no sinks


def test_production_without_the_jwt_secret_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(SHIPPED_CONFIG, env="production", environ={})
    (issue,) = caught.value.issues
    assert (issue.key_path, issue.line) == ("auth.secret", _line_of(SHIPPED_CONFIG, "secret:"))
    assert "NETRUN_WS_JWT_SECRET" in issue.message


def _line_of(path: Path, text: str) -> int:
    """The 1-based line of the last non-comment line containing ``text``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = [n for n, line in enumerate(lines, 1) if text in line.split("#", 1)[0]]
    return found[-1]


def undocumented_keys(
    config: Mapping[str, Any], sections: dict[str, set[str]], prefix: str = ""
) -> list[str]:
    """Key paths of ``config`` (a netrun_ws.yaml's data) that no table of the doc lists."""
    missing: list[str] = []

    def need(heading: str, key: object, path: str) -> None:
        if str(key) not in sections.get(heading, set()):
            missing.append(f"{path} (not in section '{heading}')")

    def slot_entry(slot: str, entry: object, path: str) -> None:
        if not isinstance(entry, Mapping):
            return  # a bare name or null: no keys
        options = dict(entry.get("options") or {})
        options.update({k: v for k, v in entry.items() if k not in ("plugin", "options")})
        for key in entry:
            if key in ("plugin", "options"):
                need(SLOTS_HEADING, key, f"{path}.{key}")
        for key in options:
            need(plugin_heading(slot, str(entry.get("plugin"))), key, f"{path}.{key}")

    for key, value in config.items():
        path = f"{prefix}{key}"
        need(TOP_LEVEL_HEADING, key, path)
        if key in ("server", "limits"):
            for sub in value or {}:
                need(key, sub, f"{path}.{sub}")
        elif key in LIST_SLOTS:
            entries = value if isinstance(value, list) else [value]
            for index, entry in enumerate(entries):
                slot_entry(key, entry, f"{path}.{index}")
        elif key in BUILTINS:
            slot_entry(key, value, path)
        elif key == "environments":
            for name, overlay in (value or {}).items():
                missing += undocumented_keys(overlay or {}, sections, f"{path}.{name}.")
    return missing


def test_every_key_of_the_shipped_config_is_documented(doc_text: str) -> None:
    data = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    assert undocumented_keys(data, documented_keys(doc_text)) == []


def test_the_documented_key_check_finds_an_undocumented_key(doc_text: str) -> None:
    # The check above must be able to fail: an option no built-in has, and a misspelt section key.
    data = {
        "server": {"prot": 1},
        "environments": {"production": {"auth": {"plugin": "jwt", "secrett": "x"}}},
    }
    assert undocumented_keys(data, documented_keys(doc_text)) == [
        "server.prot (not in section 'server')",
        "environments.production.auth.secrett (not in section 'auth: jwt')",
    ]
