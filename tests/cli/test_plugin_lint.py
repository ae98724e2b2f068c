"""`netrun-ws check` and `netrun-ws plugins` flag plugin mistakes that otherwise do nothing
silently (a hook without @hookimpl, a misspelled hook), and `plugins` names the extra a
built-in plugin needs instead of a ModuleNotFoundError."""

from __future__ import annotations

import os
from pathlib import Path

from tests.cli.test_check_and_errors import assert_clean, netrun_ws, write

UNMARKED = """\
from netrun_ws import hookimpl


@hookimpl
def configure(host):
    pass


def on_connect(connection):  # forgot @hookimpl
    pass


def helper():
    pass
"""

MISSPELLED = """\
from netrun_ws import hookimpl


class Plugin:
    @hookimpl
    def on_conect(self, connection):
        pass

    def on_message(self, message):  # forgot @hookimpl too
        pass
"""


def test_check_warns_about_a_hook_without_hookimpl(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "forgetful.py").write_text(UNMARKED)
    result = netrun_ws("check", "--config", str(write(tmp_path, "plugins: [forgetful]\n")))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: plugin 'forgetful' (file {tmp_path / 'plugins' / 'forgetful.py'}): "
        "on_connect() is named like a hook but has no @hookimpl: it is never called"
    ]
    assert_clean(result)


def test_plugins_flags_misspelled_and_unmarked_hooks(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "typo.py").write_text(MISSPELLED)
    (tmp_path / "plugins" / "forgetful.py").write_text(UNMARKED)
    result = netrun_ws("plugins", "--plugins-dir", str(tmp_path / "plugins"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (
        "    warning: on_conect() is marked @hookimpl but no hook has that name; did you mean "
        "'on_connect'? (start-up refuses it unless a plugin adds that hook with add_hookspecs)"
    ) in out
    assert "    warning: on_message() is named like a hook but has no @hookimpl" in out
    assert "    warning: on_connect() is named like a hook but has no @hookimpl" in out
    # The built-ins have none of these mistakes.
    builtin_part = out.split("forgetful [app]")[0]
    assert "warning:" not in builtin_part
    assert_clean(result)


def test_plugins_names_the_extra_a_plugin_needs(tmp_path: Path) -> None:
    # A plain install, without PyJWT: a module named jwt that is not there.
    (tmp_path / "nojwt").mkdir()
    (tmp_path / "nojwt" / "jwt.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'jwt'\", name='jwt')\n"
    )
    path = os.pathsep.join([str(tmp_path / "nojwt"), os.environ.get("PYTHONPATH", "")])
    result = netrun_ws("plugins", env={"PYTHONPATH": path})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    jwt_row = lines.index("jwt [auth] built-in netrun_ws.builtin.auth_jwt")
    assert lines[jwt_row + 1] == "    needs: pip install 'netrun-ws[auth]'"
    assert "ModuleNotFoundError" not in result.stdout
    assert_clean(result)
