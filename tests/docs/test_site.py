"""The documentation site: `mkdocs build --strict` succeeds, and would fail on a broken link.

Strict mode turns every warning into a failure: a link to a missing page or heading, a page
left out of the nav, a nav entry without a page. The generated references are checked here too:
the hook table of docs/hooks.md must be what ``netrun_ws.plugins.reference`` renders now (the
configuration reference has its own test, tests/config/test_configuration_doc.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from netrun_ws import hookspecs
from netrun_ws.plugins import reference

ROOT = Path(__file__).resolve().parents[2]


def build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        # --quiet would hide the warnings that strict mode counts: keep the default level.
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )


def test_the_site_builds_in_strict_mode(tmp_path: Path) -> None:
    result = build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "search" / "search_index.json").exists()  # search is on
    for page in ("quickstart", "configuration", "hooks", "protocol", "recipes"):
        assert (tmp_path / "site" / page / "index.html").exists(), page


@pytest.mark.parametrize(
    ("page", "broken"),
    [
        ("quickstart.md", "[a page that does not exist](no-such-page.md)"),
        ("quickstart.md", "[a heading that does not exist](protocol.md#no-such-heading)"),
    ],
)
def test_a_broken_link_fails_the_build(tmp_path: Path, page: str, broken: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", project)
    shutil.copytree(ROOT / "docs", project / "docs")
    with (project / "docs" / page).open("a", encoding="utf-8") as doc:
        doc.write(f"\n\nSee {broken}.\n")
    result = build(project, tmp_path / "site")
    assert result.returncode != 0
    assert broken.split("](")[1].rstrip(")").split("#")[-1] in result.stderr


def test_a_page_missing_from_the_nav_fails_the_build(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", project)
    shutil.copytree(ROOT / "docs", project / "docs")
    (project / "docs" / "orphan.md").write_text("# Orphan\n", encoding="utf-8")
    result = build(project, tmp_path / "site")
    assert result.returncode != 0 and "orphan.md" in result.stderr


def test_the_hook_table_is_generated_from_the_specs() -> None:
    doc = (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")
    assert doc == reference.render(doc), (
        f"docs/hooks.md's hook table is stale; regenerate it with: {reference.REGENERATE_COMMAND}"
    )
    for name in hookspecs.all_hook_names():
        assert f"[`{name}(" in doc, name
