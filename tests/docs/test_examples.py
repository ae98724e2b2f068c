"""Every Python example in README.md and docs/*.md is run, the way a reader would use it.

A ```python block is, by default, part of its page's script: the page's blocks run in order as
one program in a fresh interpreter (so a block may use what an earlier one defined, as the prose
says). An HTML comment on the line before the fence says otherwise:

- ``<!-- example: file plugins/greet.py -->``: the block is that file of the reader's project; a
  file under ``plugins/`` is loaded as a plugin into a real app (``create_app``), which runs its
  ``configure`` and registration hooks and refuses unknown hooks;
- ``<!-- example: pytest tests/test_greet.py -->``: the block is a test file; pytest runs it;
- ``<!-- example: fragment: why -->``: a piece of a larger program (a method shown alone, say); it
  is only compiled. The reason is required, and the count of fragments is capped, so the escape
  hatch stays small.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!-- example: (?P<kind>file|pytest|fragment)(?::)? ?(?P<arg>[^>]*?) ?-->")
FENCE = re.compile(r"^```python\n(?P<code>.*?)^```", re.MULTILINE | re.DOTALL)
MAX_FRAGMENTS = 6


@dataclass
class Page:
    path: Path
    script: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    tests: dict[str, str] = field(default_factory=dict)
    fragments: list[str] = field(default_factory=list)


def read(path: Path) -> Page:
    page = Page(path)
    text = path.read_text(encoding="utf-8")
    for block in FENCE.finditer(text):
        before = text[: block.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.fullmatch(before.strip())
        code = block["code"]
        if marker is None:
            page.script.append(code)
        elif marker["kind"] == "file":
            page.files[marker["arg"]] = code
        elif marker["kind"] == "pytest":
            page.tests[marker["arg"]] = code
        else:
            assert marker["arg"], f"{path.name}: a fragment marker must say why it is not run"
            page.fragments.append(code)
    return page


def with_examples() -> list[Page]:
    pages = [read(path) for path in PAGES]
    return [p for p in pages if p.script or p.files or p.tests or p.fragments]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT)]),
        "JWT_SECRET": "docs-example-secret-0123456789abcdef",
        "REDIS_URL": "redis://127.0.0.1:1/0",  # never reached: the examples only construct
    }
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("page", with_examples(), ids=lambda p: p.path.name)
def test_the_examples_of_a_page_run(page: Page, tmp_path: Path) -> None:
    for name, code in {**page.files, **page.tests}.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code, encoding="utf-8")
    for code in page.fragments:
        compile(textwrap.dedent(code), f"{page.path.name} (fragment)", "exec")
    if page.script:
        script = tmp_path / "page_script.py"
        script.write_text("\n\n".join(page.script), encoding="utf-8")
        result = run([sys.executable, str(script)], tmp_path)
        assert result.returncode == 0, f"{page.path.name}'s examples failed:\n{result.stderr}"
    for name in page.files:
        if name.startswith("plugins/") and name.endswith(".py"):
            plugin = Path(name).stem
            load = (
                "from netrun_ws import create_app\n"
                f"create_app({{'plugins_dir': 'plugins', 'plugins': [{plugin!r}],"
                " 'metrics': [], 'heartbeat': None})\n"
            )
            result = run([sys.executable, "-c", load], tmp_path)
            assert result.returncode == 0, (
                f"{page.path.name}: {name} does not load:\n{result.stderr}"
            )
    for name in page.tests:
        # pytest-asyncio in auto mode, as the page tells the reader to configure it.
        pytest_args = ["-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", name]
        result = run([sys.executable, "-m", "pytest", *pytest_args], tmp_path)
        assert result.returncode == 0, f"{page.path.name}: {name} failed:\n{result.stdout[-3000:]}"


def test_every_page_with_python_has_its_examples_checked() -> None:
    counted = sum(
        len(p.script) + len(p.files) + len(p.tests) + len(p.fragments) for p in with_examples()
    )
    fences = sum(len(FENCE.findall(path.read_text(encoding="utf-8"))) for path in PAGES)
    assert counted == fences


def test_fragments_stay_few() -> None:
    fragments = sum(len(p.fragments) for p in with_examples())
    assert fragments <= MAX_FRAGMENTS, "run the examples instead of marking them fragments"
