"""The public API rule (docs/plugins.md, "The public API"), enforced.

A module of netrun_ws is private when a part of its name starts with an underscore, or when it lies
inside a subpackage (``netrun_ws.redis.store``: import what ``netrun_ws.redis`` exports instead).
Every other module is public and declares ``__all__``. The built-in plugins and the example plugins
import only public modules (pyproject.toml's import-linter contract, run here), and from those only
the names their ``__all__`` lists.
"""

from __future__ import annotations

import ast
import importlib
import json
import logging
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grimp
import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
SETTINGS: dict[str, Any] = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
(CONTRACT,) = SETTINGS["contracts"]
EXAMPLES = {
    "chat.py": ROOT / "plugins" / "chat.py",
    "netrun_ws_example": ROOT / "plugins" / "netrun-ws-example" / "src" / "netrun_ws_example",
}
#: Public modules that do not declare ``__all__`` yet, and who adds it. An entry must go once the
#: module has ``__all__`` (a test checks), so this list only shrinks.
PENDING_ALL: dict[str, str] = {}


def is_private(module: str) -> bool:
    parts = module.split(".")[1:]
    return len(parts) > 1 or any(part.startswith("_") for part in parts)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("netrun_ws", cache_dir=None)


def lint(config: Path) -> int:
    # import-linter configures logging in-process, disabling every existing logger: put them
    # back, or later tests in this session would capture no log lines from netrun_ws.
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    state = [(lg, lg.disabled) for lg in loggers if isinstance(lg, logging.Logger)]
    try:
        # is_debug_mode: a broken config raises instead of being reported as a failed check.
        return lint_imports(str(config), no_cache=True, no_logo=True, is_debug_mode=True)
    finally:
        for logger, disabled in state:
            logger.disabled = disabled


def write_config(tmp_path: Path, package: str) -> Path:
    """A config holding pyproject's contract, with ``package`` as its only source."""
    fields = {**CONTRACT, "id": "examples", "source_modules": [package]}
    lines = [
        "[tool.importlinter]",
        f"root_packages = {json.dumps(['netrun_ws', package])}",
        "[[tool.importlinter.contracts]]",
        *(f"{key} = {json.dumps(value)}" for key, value in fields.items()),
    ]
    config = tmp_path / "contract.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def plugin_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    """An empty importable package ``name`` in ``tmp_path``: a source for the contract."""
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    return package


def test_the_builtin_plugins_keep_the_contract() -> None:
    assert lint(PYPROJECT) == 0


def test_the_example_plugins_keep_the_contract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = plugin_package(tmp_path, monkeypatch, "example_plugins")
    for name, source in EXAMPLES.items():
        if source.is_dir():
            shutil.copytree(source, package / name)
        else:
            shutil.copy(source, package / name)
    assert lint(write_config(tmp_path, "example_plugins")) == 0


@pytest.mark.parametrize(
    ("statement", "kept"),
    [
        ("from netrun_ws._masking import mask_url", False),
        ("from netrun_ws.redis.store import RedisStore", False),
        ("from netrun_ws.runtime import deadlines", False),
        ("from netrun_ws.plugins.loading import describe_exception", False),
        ("from netrun_ws.builtin.collector_hooks import CollectorHooks", False),
        ("from netrun_ws.redis import RedisStore", True),
        ("from netrun_ws.wire import error_reply", True),
        ("from netrun_ws.plugins import PluginLoadError", True),
    ],
)
def test_a_private_import_breaks_the_contract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, statement: str, kept: bool
) -> None:
    package = plugin_package(tmp_path, monkeypatch, "third_party")
    (package / "plugin.py").write_text(f"{statement}\n")
    assert lint(write_config(tmp_path, "third_party")) == (0 if kept else 1)


def test_the_contract_forbids_exactly_the_private_modules(graph: grimp.ImportGraph) -> None:
    forbidden: set[str] = set()
    for expression in CONTRACT["forbidden_modules"]:
        matched = graph.find_matching_modules(expression) if "*" in expression else {expression}
        for module in matched:
            forbidden |= {module, *graph.find_descendants(module)}
    private = {module for module in graph.modules if is_private(module)}
    assert forbidden == private


def public_modules(graph: grimp.ImportGraph) -> list[ModuleType]:
    names = sorted(module for module in graph.modules if not is_private(module))
    return [importlib.import_module(name) for name in names]


def test_every_public_module_declares_all_of_its_public_names(graph: grimp.ImportGraph) -> None:
    missing = []
    for module in public_modules(graph):
        exported = vars(module).get("__all__")
        if exported is None:
            missing.append(module.__name__)
            continue
        for name in exported:
            assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name!r}"
    assert sorted(missing) == sorted(PENDING_ALL)


def netrun_ws_imports(path: Path) -> Iterator[tuple[str, str]]:
    """``(module, name)`` for each ``from netrun_ws... import name`` in the file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.partition(".")[0] == "netrun_ws":
                yield from ((node.module, alias.name) for alias in node.names)


def test_plugins_import_only_the_names_a_public_module_exports(graph: grimp.ImportGraph) -> None:
    plugins = [
        *sorted((ROOT / "netrun_ws" / "builtin").glob("*.py")),
        EXAMPLES["chat.py"],
        *sorted(EXAMPLES["netrun_ws_example"].rglob("*.py")),
    ]
    unexported = []
    for path in plugins:
        for module, name in netrun_ws_imports(path):
            if f"{module}.{name}" in graph.modules or module.startswith("netrun_ws.builtin"):
                continue  # a module (the contract checks it), or a built-in's own helper
            exported = vars(importlib.import_module(module)).get("__all__")
            if exported is None and module in PENDING_ALL:
                continue
            if exported is None or name not in exported:
                unexported.append(f"{path.name}: from {module} import {name}")
    assert unexported == []
