"""docs/plugins.md's `greet` plugin and its test module ("Testing your plugin"), and the README's
`echo` plugin and its test, work as shown: the code blocks are written to a project folder and
its tests run with pytest."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "plugins.md"
README = ROOT / "README.md"
PYTEST_INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"


def python_blocks(path: Path, section: str) -> list[str]:
    """The python code blocks of ``section`` (a ``## `` heading) in ``path``."""
    text = path.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    blocks = re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], re.DOTALL)
    assert blocks, f"{path.name}: no python block under {section!r}"
    return blocks


def test_the_documented_plugin_test_passes(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "tests").mkdir()
    greet = python_blocks(DOC, "A plugin as a file in `plugins/`")[0]
    (tmp_path / "plugins" / "greet.py").write_text(greet)
    (tmp_path / "tests" / "test_greet.py").write_text(python_blocks(DOC, "Testing your plugin")[0])
    echo, echo_test = python_blocks(README, "Write a plugin")
    (tmp_path / "plugins" / "echo.py").write_text(echo)
    (tmp_path / "tests" / "test_echo.py").write_text(echo_test)
    (tmp_path / "pytest.ini").write_text(PYTEST_INI)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout
