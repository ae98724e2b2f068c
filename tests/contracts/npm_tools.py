"""Tools from the npm registry for contract tests (the AsyncAPI spec's schemas, the TypeScript
compiler), installed once into a cache directory like any downloaded tool, never vendored.

Without npm (or the registry) the tests that need it are a loud skip on a developer box and a
failure under CI (``CI`` set), like a missing Chromium or redis-server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

CACHE = Path(os.environ.get("NETRUN_WS_TOOL_CACHE", Path.home() / ".cache" / "netrun-ws-tests"))
# Pinned so a new release cannot change what the tests check without a commit saying so.
ASYNCAPI_SPECS = "@asyncapi/specs@6.11.1"
TYPESCRIPT = "typescript@5.9.3"


def missing_tool(message: str) -> NoReturn:
    """Skip (fail under CI): a tool the test needs is not there."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def npm_package(spec: str) -> Path:
    """The ``node_modules`` directory holding ``spec`` (``name@version``), installed if needed."""
    prefix = CACHE / "npm" / spec.replace("/", "_").replace("@", "_")
    name = spec.rsplit("@", 1)[0]
    installed = prefix / "node_modules" / name / "package.json"
    if not installed.is_file():
        npm = shutil.which("npm")
        if npm is None:
            missing_tool(f"npm is not installed (apt-get install npm): cannot fetch {spec}")
        prefix.mkdir(parents=True, exist_ok=True)
        command = [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix"]
        result = subprocess.run(
            [*command, str(prefix), spec], capture_output=True, text=True, timeout=300
        )
        if result.returncode != 0 or not installed.is_file():
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            missing_tool(f"npm install {spec} failed: {' / '.join(tail)}")
    return prefix / "node_modules"
