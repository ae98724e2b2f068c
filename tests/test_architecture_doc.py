"""docs/architecture.md's module map names every module of the package, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "netrun_ws"
DOC = ROOT / "docs" / "architecture.md"


def _map_section() -> str:
    text = DOC.read_text()
    start = text.index("## Module map")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _listed() -> set[str]:
    return set(re.findall(r"`([\w/]+\.py)`", _map_section()))


def test_every_module_is_in_the_map() -> None:
    modules = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")}
    missing = sorted(modules - _listed())
    assert not missing, f"add these to docs/architecture.md's module map: {missing}"


def test_every_listed_module_exists() -> None:
    gone = sorted(name for name in _listed() if not (PACKAGE / name).is_file())
    assert not gone, f"docs/architecture.md's module map lists modules that do not exist: {gone}"
