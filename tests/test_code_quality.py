"""The code standards, checked by the suite rather than by memory: ``mypy --strict`` on the
package (pyproject's ``[tool.mypy]``), and ruff's lint rules and formatting on the repository
(``[tool.ruff]``). The tools are pinned to a minor release in the ``dev`` extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(600)


def tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_the_package_is_mypy_strict_clean() -> None:
    done = tool("mypy")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_ruff_finds_nothing_to_lint() -> None:
    done = tool("ruff", "check", ".")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_the_code_is_ruff_formatted() -> None:
    done = tool("ruff", "format", "--check", ".")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
