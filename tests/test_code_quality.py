"""The code standards, checked by the suite rather than by memory: ``mypy --strict`` on the
package and on the tests (pyproject's ``[tool.mypy]`` lists both), and ruff's lint rules and
formatting on the repository (``[tool.ruff]``). The tools are pinned to a minor release in the
``dev`` extra."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(600)


def tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_the_package_and_the_tests_are_mypy_strict_clean() -> None:
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert (settings["strict"], settings["packages"]) == (True, ["netrun_ws", "tests"])
    done = tool("mypy")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_ruff_finds_nothing_to_lint() -> None:
    done = tool("ruff", "check", ".")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_the_code_is_ruff_formatted() -> None:
    done = tool("ruff", "format", "--check", ".")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
