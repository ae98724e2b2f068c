"""`netrun-ws new-plugin NAME`: the distribution it writes installs, is found by its entry point
and passes its own test (run by pytest in a subprocess, with netrun_ws.testing's fixtures)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netrun_ws.cli import EXIT_CONFIG, EXIT_OK, main
from tests.cli.test_check_and_errors import netrun_ws
from tests.cli.test_entry_point_plugin import PIP_TIMEOUT, run_pytest
from tests.support.cli_server import cli_env


def install(distribution: Path, target: Path) -> None:
    """pip-install ``distribution`` into ``target`` (seen only by subprocesses given it on their
    PYTHONPATH: the virtualenv stays untouched)."""
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input", "--quiet"]
    command += ["--disable-pip-version-check", "--target", str(target), str(distribution)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"


def test_the_scaffold_passes_its_own_test(tmp_path: Path) -> None:
    distribution = tmp_path / "greeter"
    result = netrun_ws("new-plugin", "greeter", "--dir", str(distribution))
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.startswith(f"created {distribution}: ")
    assert (distribution / "src" / "netrun_ws_greeter" / "__init__.py").is_file()
    site = tmp_path / "site"
    install(distribution, site)
    tested = run_pytest(distribution, site)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout
    listed = netrun_ws(
        "plugins", env={"PYTHONPATH": os.pathsep.join((cli_env()["PYTHONPATH"], str(site)))}
    )
    assert "greeter [app] entry point greeter = netrun_ws_greeter from netrun-ws-greeter 0.1.0" in (
        listed.stdout
    )
    assert "warning:" not in listed.stdout


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Bad Name", "error: invalid plugin name 'Bad Name': use lowercase letters"),
        ("9lives", "error: invalid plugin name '9lives'"),
    ],
)
def test_a_bad_name_is_one_line(
    name: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new-plugin", name, "--dir", str(tmp_path / "x")]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_an_existing_directory_is_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    assert main(["new-plugin", "greeter", "--dir", str(tmp_path / "taken")]) == EXIT_CONFIG
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'taken'}: already exists and is not an empty directory\n"
    )
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]
