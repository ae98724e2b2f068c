"""Every plugin slot is declared once, in the slot table, and everything about slots follows it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Protocol, cast

import pytest

import netrun_ws.plugins
from netrun_ws import create_app
from netrun_ws.config import Config, SlotConfig
from netrun_ws.config.loader import _PLUGIN_KEYS
from netrun_ws.config.models import SLOT_KEYS, config_model
from netrun_ws.config.slot_table import (
    SLOTS,
    Many,
    One,
    OneOrNull,
    Slot,
    SlotTable,
    slot,
    table_rows,
)
from netrun_ws.plugins.loading import BUILTINS
from netrun_ws.plugins.slots import slot_entries
from tests.support.cli_server import cli_env

ROOT = Path(__file__).resolve().parents[2]
ECHO = "tests.host.echo_plugin"


def plugin_names(value: SlotConfig | list[SlotConfig] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(entry.plugin for entry in value) if isinstance(value, list) else (value.plugin,)


class WithSinks(Protocol):
    """A config model made with a ``sinks`` slot added: a field the type checker cannot see."""

    sinks: list[SlotConfig]


# --------------------------------------------------------------------------- derived from the table


def test_the_table_builtins_and_config_fields_agree() -> None:
    names = [row.name for row in SLOTS]
    assert names == [name for name in Config.model_fields if name in names]
    assert set(Config.model_fields) - set(names) == {"server", "limits", "history", "plugins_dir"}
    defaults = Config()
    for row in SLOTS:
        field = Config.model_fields[row.name]
        assert field.description == row.description
        assert plugin_names(getattr(defaults, row.name)) == row.default_plugins
        expected = list[SlotConfig] if row.many else SlotConfig
        assert field.annotation == (expected | None if row.nullable else expected), row.name
    assert BUILTINS == {row.name: dict(row.builtins) for row in SLOTS if row.builtins}
    assert SLOT_KEYS == {row.name for row in SLOTS if not row.many}
    assert _PLUGIN_KEYS == tuple(names)
    assert netrun_ws.plugins.SLOTS is SLOTS


def test_plugins_are_registered_in_the_table_order_under_their_registered_names() -> None:
    config = Config.model_validate({"metrics": ["log", "json"], "plugins": [ECHO]})
    entries = slot_entries(config)
    assert [(entry.slot, entry.key_path) for entry in entries] == [
        ("auth", "auth"),
        ("store", "store"),
        ("heartbeat", "heartbeat"),
        ("reconnect", "reconnect"),
        ("protocol", "protocol"),
        ("metrics", "metrics.0"),
        ("metrics", "metrics.1"),
        (None, "plugins.0"),
    ]
    host = create_app({**config.model_dump(), "plugins_dir": None}).state.host
    assert list(host.plugins) == [entry.registered_name for entry in entries]
    assert list(host.plugins)[-3:] == ["metrics.0", "metrics.1", ECHO]


def test_a_list_slot_of_a_test_table_becomes_a_list_field() -> None:
    sinks = Slot("sinks", "Where events go.", {"null": "x.null"}, ("null",), many=True)
    model = config_model([*SLOTS[:-1], sinks, SLOTS[-1]])
    fields = list(model.model_fields)
    assert fields[fields.index("sinks") - 1 : fields.index("sinks") + 3] == [
        "metrics",
        "sinks",
        "plugins_dir",
        "plugins",
    ]
    assert plugin_names(cast(WithSinks, model()).sinks) == ("null",)
    written = cast(WithSinks, model.model_validate({"sinks": "file", "metrics": None}))
    assert plugin_names(written.sinks) == ("file",)
    assert model.model_fields["sinks"].description == "Where events go."


# --------------------------------------------------------------------------- a bad row is one line


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"name": "cache", "default": None},
            "slot 'cache': a slot that may not be null needs a default plugin (or annotate "
            "OneOrNull)",
        ),
        ({"name": "cache", "default": "lru"}, "slot 'cache': default 'lru' is not one of its"),
        ({"name": "sinks", "default": "a", "many": True}, "slot 'sinks': a list slot's default"),
        ({"name": "cache", "default": ("a",)}, "slot 'cache': a single-plugin slot's default"),
        ({"name": "apps", "default": (), "app": True}, "slot 'apps': app plugins are a list"),
        ({"name": "my-slot", "default": None, "nullable": True}, "slot 'my-slot': the name"),
        (
            {"name": "sinks", "default": (), "many": True, "nullable": True},
            "slot 'sinks': null empties a list slot",
        ),
    ],
)
def test_a_bad_row_is_refused_naming_the_slot(row: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Slot(description="x", **row)


def test_a_slot_declared_without_a_kind_is_refused_naming_it() -> None:
    class Table(SlotTable[Any, Any, Any]):
        cache: int = slot("A cache.", builtins={"lru": "x.lru"}, default="lru")

    with pytest.raises(TypeError, match=re.escape("slot 'cache': declare it as `cache: One")):
        table_rows(Table)


def test_a_slot_named_like_another_config_key_is_refused() -> None:
    class Table(SlotTable[One, OneOrNull, Many]):
        server: One = slot("Clashes.", builtins={"a": "x.a"}, default="a")
        sinks: Many = slot("Fine.", default=())

    with pytest.raises(ValueError, match=re.escape("slot 'server': the config already has")):
        config_model(table_rows(Table))


# --------------------------------------------------------------------------- one edit is enough

# The plugin a new slot's built-in names; it records the options it is configured with.
_CACHE_PLUGIN = '''\
"""cache: lru - keeps recent entries (a test slot's built-in)."""

from pydantic import BaseModel, ConfigDict, Field

from netrun_ws import hookimpl

CONFIGURED: list[int] = []


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(default=16, gt=0, description="Entries kept.")


@hookimpl
def configure(options):
    CONFIGURED.append(options.size)
'''

_NEW_ROW = """\
    cache: One = slot(
        "Keeps recent entries: 'lru' or 'fifo'.",
        builtins={"lru": "netrun_ws_cache", "fifo": "netrun_ws_cache"},
        default="lru",
    )
"""

# Run against the edited copy; prints what each part of netrun_ws made of the new slot.
_PROBE = '''\
import json, sys
from pathlib import Path

import netrun_ws, netrun_ws_cache
from netrun_ws.app import load_app_config
from netrun_ws.config import Config, ConfigError, load_config
from netrun_ws.config.reference import render_reference
from netrun_ws.plugins.loading import discover, resolve

assert Path(netrun_ws.__file__).is_relative_to(Path.cwd()), netrun_ws.__file__
Path("netrun_ws.yaml").write_text("""
plugins_dir: null
environments:
  production: {cache: {size: 5}}
  staging: {cache: {plugin: fifo}}
""")
seen = {"fields": list(Config.model_fields), "default": Config().cache.plugin}
for env in ("production", "staging"):
    cache = load_config("netrun_ws.yaml", env=env, environ={}).config.cache
    seen[env] = [cache.plugin, cache.options]
try:
    load_app_config({"server": {"prot": 1}, "cache": "lruu"})
except ConfigError as error:
    seen["mistakes"] = [issue.message for issue in error.issues]
try:
    netrun_ws.create_app({"plugins_dir": None, "cache": {"plugin": "lru", "size": 0}})
except ConfigError as error:
    seen["bad_option"] = [issue.key_path for issue in error.issues]
host = netrun_ws.create_app({"plugins_dir": None, "cache": {"plugin": "lru", "size": 7}})
host = host.state.host
seen["registered"] = list(host.plugins)
seen["configured"] = netrun_ws_cache.CONFIGURED
seen["origin"] = str(resolve("fifo", slot="cache", plugins_dir=None).origin)
seen["listed"] = [p.name for p in discover(None) if p.slot == "cache"]
seen["doc"] = render_reference()
json.dump(seen, sys.stdout)
'''


def test_a_slot_added_to_the_table_reaches_every_part(tmp_path: Path) -> None:
    """The proof of "one declaration": a copy of netrun_ws with one row added to the table."""
    shutil.copytree(
        ROOT / "netrun_ws", tmp_path / "netrun_ws", ignore=shutil.ignore_patterns("__pycache__")
    )
    table = tmp_path / "netrun_ws" / "config" / "slot_table.py"
    source = table.read_text(encoding="utf-8")
    anchor = "    metrics: Many = slot(\n"
    assert source.count(anchor) == 1
    table.write_text(source.replace(anchor, _NEW_ROW + anchor), encoding="utf-8")
    (tmp_path / "netrun_ws_cache.py").write_text(_CACHE_PLUGIN, encoding="utf-8")

    probe_env = cli_env({"PYTHONPATH": str(tmp_path), "NETRUN_WS_ENV": ""})
    command = [sys.executable, "-c", _PROBE]
    done = subprocess.run(command, cwd=tmp_path, env=probe_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)

    # The config model: a field in the table's place, with its default plugin.
    fields = seen["fields"]
    assert fields[fields.index("protocol") + 1 : fields.index("metrics")] == ["cache"]
    assert seen["default"] == "lru"
    # The loader: overlays merge it as a slot, an invalid config still reports its plugin.
    assert seen["production"] == ["lru", {"size": 5}]  # options added to the default plugin
    assert seen["staging"] == ["fifo", {}]  # another plugin: replaced whole
    assert len(seen["mistakes"]) == 2
    assert any(
        "unknown plugin 'lruu' for slot 'cache'; did you mean 'lru'?" in m for m in seen["mistakes"]
    )
    assert seen["bad_option"] == ["cache.size"]
    # The plugin lookup and registration: its built-ins, in the table's order, configured.
    assert seen["origin"] == "built-in netrun_ws_cache"
    assert seen["listed"] == ["lru", "fifo"]
    assert seen["registered"][4:7] == ["protocol", "cache", "metrics.0"]
    assert seen["configured"] == [7]
    # The reference: its row, its built-ins' sections, and the prose that lists slots.
    doc = seen["doc"]
    row = "| `cache` | plugin slot | `lru` | Keeps recent entries: 'lru' or 'fifo'. Built-in: "
    assert row + "[`lru`](#cache-lru), [`fifo`](#cache-fifo). |" in doc
    assert "### cache: fifo\n\nModule `netrun_ws_cache`.\n\nKeeps recent entries" in doc
    assert "| `size` | integer, > 0 | `16` | Entries kept. |" in doc
    assert "`reconnect`, `protocol` and `cache` each name one plugin" in doc
    assert "The single-plugin slots are `auth`, `cache`, `heartbeat`" in doc


# --------------------------------------------------------------------------- the plugin guide


def test_the_plugin_guide_lists_every_slot_its_builtins_and_the_registration_order() -> None:
    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)`[^|]* \| (.+) \|$", guide, flags=re.MULTILINE)
    listed = {name: re.findall(r"`([\w-]+)`", cell) for name, cell in rows}
    for row in SLOTS:
        assert listed.get(row.name) == list(row.builtins), row.name
    order = guide.split("Plugins are registered in config order: ", 1)[1].split(". ", 1)[0]
    assert re.findall(r"`(\w+)`", textwrap.dedent(order)) == [row.name for row in SLOTS]
