"""The example distribution plugins/netrun-ws-example, pip-installed, is found by its entry point.

The distribution is installed once per module into a temporary directory that only the
subprocesses below see on their PYTHONPATH, so the test process and the virtualenv stay untouched.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from netrun_ws import ErrorCode
from tests.host.helpers import recv_json, recv_until
from tests.support.cli_server import cli_env, free_port, run_cli

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = ROOT / "plugins" / "netrun-ws-example"
ORIGIN = "entry point example = netrun_ws_example from netrun-ws-example 0.1.0"
# Bounded below pytest's per-test timeout, which also covers this module fixture's setup.
PIP_TIMEOUT = 90


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the installed example distribution (package and dist-info)."""
    target = tmp_path_factory.mktemp("example-site")
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input", "--quiet"]
    command += ["--disable-pip-version-check", "--target", str(target), str(DISTRIBUTION)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    assert (target / "netrun_ws_example" / "__init__.py").is_file()
    return target


def with_site(site: Path) -> dict[str, str]:
    """Extra environment putting ``site`` after the repository on the subprocess's path."""
    return {"PYTHONPATH": os.pathsep.join((cli_env()["PYTHONPATH"], str(site)))}


def netrun_ws(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netrun_ws", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=cli_env(env),
        timeout=60,
    )


def write_config(directory: Path, yaml_text: str) -> Path:
    path = directory / "netrun_ws.yaml"
    path.write_text(textwrap.dedent(yaml_text).lstrip())
    return path


def test_plugins_command_lists_the_entry_point_its_distribution_and_hooks(
    example_site: Path,
) -> None:
    result = netrun_ws("plugins", cwd=ROOT, env=with_site(example_site))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = f"example [app] {ORIGIN}"
    assert header in lines, result.stdout
    hooks = lines[lines.index(header) + 1]
    assert hooks == "    hooks: configure, on_message, register_message_types, welcome_payload"


def test_check_resolves_the_entry_point_before_a_plugins_dir_file(
    tmp_path: Path, example_site: Path
) -> None:
    # A plugins_dir file of the same name comes later in the lookup order, so it is never imported.
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "example.py").write_text(
        "raise RuntimeError('shadowed file imported')\n"
    )
    config = write_config(tmp_path, "plugins: [{plugin: example, motd: hi}]\n")
    result = netrun_ws("check", "--config", str(config), cwd=tmp_path, env=with_site(example_site))
    assert result.returncode == 0, result.stderr
    assert re.search(rf"^  app +example +{re.escape(ORIGIN)}$", result.stdout, re.M), result.stdout


async def test_run_serves_the_entry_point_plugin(tmp_path: Path, example_site: Path) -> None:
    config = write_config(
        tmp_path,
        """
        heartbeat: null
        metrics: []
        plugins_dir: null
        plugins: [{plugin: example, motd: hi}]
        """,
    )
    async with run_cli(config, cwd=tmp_path, env=with_site(example_site)) as server:
        async with connect(f"ws://{server.addr}/ws?user_id=alice") as client:
            welcome = await recv_json(client)
            assert welcome["type"] == "connect" and welcome["user_id"] == "alice"
            assert welcome["motd"] == "hi"
            await client.send(json.dumps({"type": "echo", "text": "x"}))
            assert await recv_until(client, "echo") == {"type": "echo", "text": "x"}
            # The plugin's model is what validates its type: a missing field is refused.
            await client.send(json.dumps({"type": "echo"}))
            error = await recv_until(client, "error")
            assert error["code"] == ErrorCode.VALIDATION_FAILED
    assert "Traceback" not in server.text()


def test_run_reports_a_bad_plugin_option_with_file_and_line(
    tmp_path: Path, example_site: Path
) -> None:
    config = write_config(
        tmp_path,
        """
        metrics: []
        plugins_dir: null
        plugins:
          - {plugin: example, motdd: 1}
        """,
    )
    result = netrun_ws(
        "run",
        "--config",
        str(config),
        "--port",
        str(free_port()),
        cwd=tmp_path,
        env=with_site(example_site),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith(f"{config}:4 plugins.0.motdd: ") for line in lines), lines
    assert any("did you mean 'motd'?" in line for line in lines), lines


def test_without_the_distribution_the_name_is_unknown(tmp_path: Path) -> None:
    config = write_config(tmp_path, "plugins_dir: null\nplugins: [example]\n")
    result = netrun_ws("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith(f"{config}:2 plugins.0.plugin: unknown plugin 'example'")


def run_pytest(directory: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """pytest in ``directory`` (a plugin distribution) with ``site`` on the path: its tests use
    netrun_ws.testing's fixtures through the pytest11 entry point of the installed netrun-ws."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=directory,
        env=cli_env({"PYTHONPATH": str(site)}),
        timeout=120,
    )


def test_the_example_distributions_own_tests_pass(example_site: Path) -> None:
    result = run_pytest(DISTRIBUTION, example_site)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout
