"""`netrun-ws check` and start-up errors: one line per mistake, documented exit codes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.cli_server import cli_env, free_port

ROOT = Path(__file__).resolve().parents[2]


def netrun_ws(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netrun_ws", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=cli_env(env),
        timeout=60,
    )


def write(tmp_path: Path, yaml_text: str, name: str = "netrun_ws.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(yaml_text).lstrip())
    return path


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout


def test_check_default_config_lists_each_slot_and_origin() -> None:
    result = netrun_ws("check", "--config", "netrun_ws.yaml")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "OK" in out
    for line in ("auth", "anonymous", "store", "memory", "heartbeat", "ping", "protocol", "json"):
        assert line in out
    assert "built-in netrun_ws.builtin.auth_anonymous" in out
    assert "chat" in out and "file" in out and "plugins/chat.py" in out


def test_config_mistakes_are_reported_all_at_once_with_file_and_line(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        """
        server:
          prot: 8000
        limits:
          send_queue: lots
        auth: {plugin: anonymous, secret: "${NETRUN_WS_TEST_UNSET_VAR}"}
        """,
    )
    result = netrun_ws("check", "--config", str(config))
    assert result.returncode == 2
    assert_clean(result)
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith(f"{config}:2 server.prot: ") and "port" in line for line in lines)
    assert any(line.startswith(f"{config}:4 limits.send_queue: ") for line in lines)
    assert any(
        line.startswith(f"{config}:5 auth.secret: ") and "NETRUN_WS_TEST_UNSET_VAR" in line
        for line in lines
    ), lines


def test_unknown_plugin_and_bad_plugin_options(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        """
        auth: {plugin: jwtt}
        heartbeat: {plugin: ping, interval: -1, bogus: 2}
        plugins_dir: null
        plugins: []
        """,
    )
    result = netrun_ws("check", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert_clean(result)
    err = result.stderr
    assert (
        f"{config}:1 auth.plugin: unknown plugin 'jwtt' for slot 'auth'; did you mean 'jwt'?" in err
    )
    assert f"{config}:2 heartbeat.interval: " in err
    assert f"{config}:2 heartbeat.bogus: " in err


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "x = undefined_name\n",
            "failed while importing: NameError: name 'undefined_name' is not defined",
        ),
        ("def broken(:\n", "failed while importing: SyntaxError"),
        (
            "from netrun_ws import hookimpl\n\n@hookimpl\ndef on_conect(connection):\n    pass\n",
            "implements unknown hook 'on_conect'; did you mean 'on_connect'?",
        ),
        (
            "from netrun_ws import hookimpl\n\n@hookimpl\ndef configure(host):\n"
            "    raise RuntimeError('no database')\n",
            "failed in configure: RuntimeError: no database",
        ),
        (
            "from netrun_ws import hookimpl\n\n@hookimpl\ndef on_connect(connection, nonsense):\n"
            "    pass\n",
            "nonsense",
        ),
        (
            "from netrun_ws import hookimpl\n\n@hookimpl\ndef register_redactions():\n"
            "    return ['ticket']\n",
            "failed in register_redactions: returned list, not Redactions",
        ),
    ],
    ids=[
        "import-error",
        "syntax-error",
        "misspelled-hook",
        "configure-raises",
        "bad-argument",
        "redactions-not-redactions",
    ],
)
def test_broken_plugins_stop_startup_with_one_line(
    tmp_path: Path, source: str, expected: str
) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "broken.py").write_text(source)
    config = write(tmp_path, "plugins: [broken]\n")
    result = netrun_ws("check", "--config", str(config))
    assert result.returncode == 3, result.stderr
    assert_clean(result)
    line = result.stderr.strip()
    assert "\n" not in line
    assert line.startswith("plugin 'broken' (file ")
    assert "broken.py" in line
    assert expected in line


def test_startup_failure_exits_4_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "nodb.py").write_text(
        "from netrun_ws import hookimpl\n\n@hookimpl\nasync def startup(host):\n"
        "    raise ConnectionError('database unreachable')\n"
    )
    config = write(tmp_path, "plugins: [nodb]\nmetrics: []\n")
    result = netrun_ws("run", "--config", str(config), "--port", str(free_port()))
    assert result.returncode == 4
    assert_clean(result)
    assert "start-up failed: plugin 'nodb'" in result.stderr + result.stdout
    assert "ConnectionError: database unreachable" in result.stderr + result.stdout


def test_missing_config_file_is_one_line() -> None:
    result = netrun_ws("check", "--config", "does-not-exist.yaml")
    assert result.returncode == 2
    assert_clean(result)
    assert "does-not-exist.yaml" in result.stderr


def test_secrets_are_masked_in_check_output() -> None:
    secret = "s3cr3t-value-that-must-not-print"
    result = netrun_ws(
        "check",
        "--config",
        "netrun_ws.yaml",
        "--env",
        "production",
        env={"NETRUN_WS_JWT_SECRET": secret},
    )
    assert result.returncode == 0, result.stderr
    assert "jwt" in result.stdout
    assert secret not in result.stdout + result.stderr
    assert "***" in result.stdout


def test_unknown_environment_lists_the_defined_ones() -> None:
    result = netrun_ws("check", "--config", "netrun_ws.yaml", "--env", "staging")
    assert result.returncode == 2
    assert "staging" in result.stderr and "production" in result.stderr


def test_token_command_signs_with_the_configured_secret() -> None:
    import jwt

    secret = "token-test-secret-0123456789abcdef"
    result = netrun_ws(
        "token",
        "--user",
        "alice",
        "--env",
        "production",
        "--claim",
        "role=admin",
        env={"NETRUN_WS_JWT_SECRET": secret},
    )
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"])
    assert claims["user_id"] == "alice" and claims["sub"] == "alice" and claims["role"] == "admin"
    anonymous = netrun_ws("token", "--user", "alice")
    assert anonymous.returncode == 2
    assert "auth.plugin is 'anonymous'" in anonymous.stderr


def test_plugins_command_lists_builtins_and_local_plugins_with_hooks() -> None:
    result = netrun_ws("plugins")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "jwt [auth] built-in netrun_ws.builtin.auth_jwt" in out
    assert "chat [app] file" in out
    chat_hooks = out.split("chat [app] file", 1)[1].splitlines()[1]
    assert "on_message" in chat_hooks and "register_message_types" in chat_hooks


def test_help_is_useful() -> None:
    for command in ("run", "check", "plugins", "token"):
        result = netrun_ws(command, "--help")
        assert result.returncode == 0
        assert "usage: netrun-ws " + command in result.stdout
    top = netrun_ws("--help")
    assert "Exit codes" in top.stdout


def test_plugin_mistakes_are_reported_with_the_other_config_mistakes(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        """
        server: {port: not-a-port}
        auth: {plugin: jwtt}
        heartbeat: {plugin: ping, interval: -1}
        plugins_dir: null
        """,
    )
    result = netrun_ws("check", "--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"{config}:1 server.port: ")
    assert lines[1].startswith(f"{config}:2 auth.plugin: unknown plugin 'jwtt'")
    assert lines[2].startswith(f"{config}:3 heartbeat.interval: ")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--claim", "sub=mallory"], "sub"),
        (["--expiry", "0"], "expiry"),
        (["--expiry", "-5"], "expiry_seconds must be > 0, got -5"),
    ],
)
def test_token_command_bad_input_is_one_line(args: list[str], expected: str) -> None:
    env = {"NETRUN_WS_JWT_SECRET": "token-test-secret-0123456789abcdef"}
    result = netrun_ws("token", "--user", "alice", "--env", "production", *args, env=env)
    assert result.returncode == 2
    assert_clean(result)
    assert expected in result.stderr


def test_hook_wrappers_are_refused(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "wrapper.py").write_text(
        "from netrun_ws import hookimpl\n\n@hookimpl(wrapper=True)\ndef on_connect(connection):\n"
        "    return (yield)\n"
    )
    result = netrun_ws("check", "--config", str(write(tmp_path, "plugins: [wrapper]\n")))
    assert result.returncode == 3
    assert "hook wrappers are not supported (on_connect)" in result.stderr


def test_jwt_algorithm_mistakes_are_config_errors(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        """
        auth: {plugin: jwt, secret: "0123456789abcdef0123456789abcdef", algorithms: [HS256, RS256]}
        plugins_dir: null
        """,
    )
    result = netrun_ws("check", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}:1 auth.algorithms: " in result.stderr
    assert "mix key families" in result.stderr
    config.write_text(config.read_text().replace("[HS256, RS256]", "[none]"))
    result = netrun_ws("check", "--config", str(config))
    assert result.returncode == 2
    assert "refused algorithm(s) ['none']" in result.stderr
