"""Both import paths, the ``netrun`` namespace package, and a core install without the extras.

``from netrun_ws import X`` and the old ``from netrun.websocket import X`` must give the same
objects. ``netrun`` has no ``__init__.py`` so other ``netrun.*`` distributions can share it.
Without PyJWT or redis-py the package still imports, and the classes that need them raise an
ImportError naming the extra to install. Missing extras are simulated two ways in subprocesses:
``sys.modules[name] = None`` (the import system's "known missing" marker) and a site-packages
view that truly lacks the two distributions.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path
from typing import Any

import pytest

import netrun
import netrun.websocket
import netrun_ws

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBPROCESS_TIMEOUT = 60.0

#: Run in a fresh interpreter after the extras are made unavailable; prints one JSON object.
PROBE = textwrap.dedent(
    """
    import asyncio, importlib.util, json, sys

    import netrun.websocket
    import netrun_ws
    from netrun_ws import JWTAuthService, WebSocketSessionManager

    result = {
        "redis_support": netrun_ws.REDIS_SUPPORT,
        "find_spec_redis": importlib.util.find_spec("redis") is not None,
        "same_objects": all(
            getattr(netrun.websocket, name) is getattr(netrun_ws, name)
            for name in netrun_ws.__all__
        ),
    }

    def import_error(build):
        try:
            build()
        except ImportError as exc:
            return str(exc)
        return None

    result["auth_error"] = import_error(lambda: JWTAuthService("s" * 40))
    result["redis_url_error"] = import_error(
        lambda: WebSocketSessionManager(redis_url="redis://127.0.0.1:1/0")
    )
    result["redis_client_error"] = import_error(
        lambda: WebSocketSessionManager(redis_client=object())
    )

    async def memory_round_trip():
        sessions = WebSocketSessionManager()
        connection_id = await sessions.create_connection("tab", "alice", "Alice")
        found = await sessions.get_connection(connection_id)
        removed = await sessions.disconnect(connection_id)
        return sessions.backend_name, found["user_id"], removed

    result["memory_sessions"] = list(asyncio.run(memory_round_trip()))
    result["extras_loaded"] = sorted(
        name for name, module in sys.modules.items()
        if name.split(".")[0] in ("jwt", "redis") and module is not None
    )
    print(json.dumps(result))
    """
)


def run_python(
    code: str, *, pythonpath: list[Path], isolated_site: bool = False
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(path) for path in pythonpath)
    flags = ["-S"] if isolated_site else []  # -S: no site-packages but those on PYTHONPATH
    return subprocess.run(
        [sys.executable, *flags, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )


def probe(prelude: str, *, pythonpath: list[Path], isolated_site: bool = False) -> dict[str, Any]:
    completed = run_python(prelude + PROBE, pythonpath=pythonpath, isolated_site=isolated_site)
    assert completed.returncode == 0, completed.stderr
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def assert_core_without_extras(result: dict[str, Any]) -> None:
    assert result["redis_support"] is False
    assert result["same_objects"] is True
    assert result["auth_error"] == "JWTAuthService needs PyJWT: pip install 'netrun-ws[auth]'"
    for key in ("redis_url_error", "redis_client_error"):
        assert result[key] is not None and "pip install 'netrun-ws[redis]'" in result[key]
    assert result["memory_sessions"] == ["memory", "alice", True]
    assert result["extras_loaded"] == []


# ---------------------------------------------------------------------------------------------
# Both paths, same objects
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", netrun_ws.__all__)
def test_every_public_name_is_the_same_object_on_both_paths(name: str) -> None:
    assert getattr(netrun.websocket, name) is getattr(netrun_ws, name)


def test_the_old_path_exports_exactly_the_same_names() -> None:
    # vars(): mypy --strict does not see __all__ as re-exported by netrun/websocket/__init__.py.
    assert vars(netrun.websocket)["__all__"] == netrun_ws.__all__
    namespace: dict[str, Any] = {}
    exec("from netrun.websocket import *", namespace)
    exported = {key: value for key, value in namespace.items() if key != "__builtins__"}
    assert set(exported) == set(netrun_ws.__all__)
    assert all(value is getattr(netrun_ws, key) for key, value in exported.items())


def test_the_netrun_websocket_readme_imports_work() -> None:
    from netrun.websocket import (  # noqa: F401  (the import is the test)
        HeartbeatConfig,
        HeartbeatMonitor,
        JWTAuthService,
        MetricsCollector,
        ReconnectionConfig,
        ReconnectionManager,
        WebSocketConnectionManager,
        WebSocketSessionManager,
    )

    assert WebSocketConnectionManager.__module__ == "netrun_ws.connection_manager"


def test_version_and_redis_flag() -> None:
    try:
        installed: str | None = importlib.metadata.version("netrun-ws")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    assert netrun_ws.__version__ == (installed or "0.0.0+source")
    assert netrun.websocket.__version__ == netrun_ws.__version__
    assert isinstance(netrun_ws.REDIS_SUPPORT, bool)
    assert netrun_ws.REDIS_SUPPORT is (importlib.util.find_spec("redis") is not None)
    assert netrun.websocket.REDIS_SUPPORT is netrun_ws.REDIS_SUPPORT


# ---------------------------------------------------------------------------------------------
# netrun is a namespace package
# ---------------------------------------------------------------------------------------------


def test_netrun_is_a_namespace_package() -> None:
    assert getattr(netrun, "__file__", None) is None
    assert netrun.__spec__ is not None and netrun.__spec__.origin is None
    assert type(netrun.__path__).__name__ == "_NamespacePath"
    locations = [Path(entry) for entry in netrun.__path__]
    assert (REPO_ROOT / "netrun").resolve() in {location.resolve() for location in locations}
    assert not any((location / "__init__.py").exists() for location in locations)
    assert Path(netrun.websocket.__file__ or "").resolve() == (
        REPO_ROOT / "netrun" / "websocket" / "__init__.py"
    )


def test_netrun_coexists_with_another_netrun_distribution(tmp_path: Path) -> None:
    other = tmp_path / "other_dist"
    (other / "netrun" / "othermod").mkdir(parents=True)
    (other / "netrun" / "othermod" / "__init__.py").write_text("VALUE = 42\n")
    code = textwrap.dedent(
        """
        import json
        import netrun, netrun.othermod, netrun.websocket, netrun_ws
        print(json.dumps({
            "other": netrun.othermod.VALUE,
            "same": netrun.websocket.WebSocketConnectionManager
                    is netrun_ws.WebSocketConnectionManager,
            "path": sorted(set(netrun.__path__)),
        }))
        """
    )
    completed = run_python(code, pythonpath=[REPO_ROOT, other])
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["other"] == 42 and result["same"] is True
    assert result["path"] == sorted({str(REPO_ROOT / "netrun"), str(other / "netrun")})


# ---------------------------------------------------------------------------------------------
# The core install without the extras
# ---------------------------------------------------------------------------------------------


def test_without_extras_marked_missing_in_sys_modules() -> None:
    prelude = "import sys\nsys.modules['jwt'] = None\nsys.modules['redis'] = None\n"
    assert_core_without_extras(probe(prelude, pythonpath=[REPO_ROOT]))


def test_without_extras_really_absent_from_site_packages(tmp_path: Path) -> None:
    """A site-packages view holding everything installed except PyJWT and redis-py."""
    site = Path(sysconfig.get_paths()["purelib"])
    view = tmp_path / "site-packages"
    view.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if name in ("jwt", "redis") or name.startswith(("pyjwt-", "redis-")):
            continue
        (view / entry.name).symlink_to(entry)
    # The view is only meaningful if the real site-packages has both extras installed.
    assert (site / "jwt").is_dir() and (site / "redis").is_dir()
    result = probe("", pythonpath=[REPO_ROOT, view], isolated_site=True)
    assert result["find_spec_redis"] is False
    assert_core_without_extras(result)


def test_redis_support_means_installed_not_necessarily_importable() -> None:
    """REDIS_SUPPORT only checks that a ``redis`` package can be found (``find_spec``).

    With ``redis`` present but ``redis.asyncio`` unusable, the flag is True and the Redis
    session manager still refuses with the install hint rather than failing later.
    """
    prelude = "import sys\nsys.modules['redis.asyncio'] = None\n"
    result = probe(prelude, pythonpath=[REPO_ROOT])
    assert result["redis_support"] is True
    assert result["auth_error"] is None  # PyJWT is untouched here
    assert result["redis_url_error"] is not None
    assert "pip install 'netrun-ws[redis]'" in result["redis_url_error"]
