"""pyproject.toml allows exactly the releases the fences were tested with, and the fences are
open where the tests run (else the suite would test only the fallbacks)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from netrun_ws._upstream import UPSTREAMS, ReleaseRange
from netrun_ws._upstream import pyjwt as pyjwt_fence
from netrun_ws._upstream import uvicorn as uvicorn_fence
from netrun_ws._upstream import websockets as websockets_fence
from tests.upstream import decide_afresh

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _requirements() -> dict[str, str]:
    """Each requirement of the package and its extras: distribution name -> version specifier."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += extra
    found = (re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?(.*)", line) for line in lines)
    return {match[1]: match[2].replace(" ", "") for match in found if match}


@pytest.mark.parametrize(
    "tested",
    [uvicorn_fence.TESTED, websockets_fence.TESTED, pyjwt_fence.TESTED],
    ids=lambda tested: tested.distribution,
)
def test_pyproject_allows_the_tested_range(tested: ReleaseRange) -> None:
    assert _requirements()[tested.distribution] == str(tested)


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_every_fence_is_open_here(upstream: str) -> None:
    assert decide_afresh(upstream) is None
