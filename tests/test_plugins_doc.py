"""docs/plugins.md's `greet` plugin and its test module ("Testing your plugin") work as shown:
both code blocks are written to a project folder and its tests run with pytest."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "plugins.md"
PYTEST_INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"


def first_python_block(section: str) -> str:
    text = DOC.read_text()
    start = text.index(f"\n## {section}\n")
    match = re.compile(r"```python\n(.*?)```", re.DOTALL).search(text, start)
    assert match is not None, f"docs/plugins.md: no python block under {section!r}"
    return match.group(1)


def test_the_documented_plugin_test_passes(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "greet.py").write_text(
        first_python_block("A plugin as a file in `plugins/`")
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_greet.py").write_text(first_python_block("Testing your plugin"))
    (tmp_path / "pytest.ini").write_text(PYTEST_INI)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
