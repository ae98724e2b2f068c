"""netrun_ws._upstream itself: release ranges, the environment variable that shuts the fences,
a fence whose upstream names are gone, and the one warning line a fallback gives."""

from __future__ import annotations

import logging
import sys

import pytest

from netrun_ws import _upstream
from netrun_ws._upstream import FALLBACK_ENV, UPSTREAMS, ReleaseRange
from tests.upstream import decide_afresh


@pytest.mark.parametrize(
    ("version", "tested"),
    [
        ("0.54.0", True),
        ("0.54.7", True),
        ("0.54", True),
        ("0.53.9", False),
        ("0.55.0", False),
        ("0.55.0rc1", False),
        ("1.0", False),
        ("unknown", False),
    ],
)
def test_a_release_range(version: str, tested: bool) -> None:
    tested_range = ReleaseRange("uvicorn", (0, 54), (0, 55))
    assert str(tested_range) == ">=0.54,<0.55"
    refusal = tested_range.refusal(version)
    assert (refusal is None) == tested
    if not tested:
        assert refusal == f"uvicorn {version} is not in the tested range >=0.54,<0.55"


def test_the_range_defaults_to_the_installed_release() -> None:
    assert ReleaseRange("pytest", (1,), (2,)).refusal() == (
        f"pytest {pytest.__version__} is not in the tested range >=1,<2"
    )


def test_the_environment_shuts_all_fences_or_those_it_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(FALLBACK_ENV, "all")
    for upstream in UPSTREAMS:
        assert decide_afresh(upstream) == f"{FALLBACK_ENV}=all"
    monkeypatch.setenv(FALLBACK_ENV, "uvicorn, pyjwt")
    refused = {upstream for upstream in UPSTREAMS if decide_afresh(upstream) is not None}
    assert refused == {"uvicorn", "pyjwt"}


def test_a_fence_whose_upstream_module_is_gone_is_shut(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if a uvicorn release moved its sans-I/O protocol: the fence cannot even be imported.
    monkeypatch.delitem(sys.modules, "netrun_ws._upstream.uvicorn")
    monkeypatch.setitem(sys.modules, "uvicorn.protocols.websockets.websockets_sansio_impl", None)
    reason = decide_afresh("uvicorn")
    assert reason is not None
    assert reason.startswith("ModuleNotFoundError: import of uvicorn.protocols.websockets")
    assert "\n" not in reason


def test_a_fallback_is_said_once_in_one_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(FALLBACK_ENV, "websockets")
    _upstream.forget()
    try:
        with caplog.at_level(logging.WARNING, logger="netrun_ws._upstream"):
            for _ in range(3):
                assert not _upstream.usable("a feature", "uvicorn", "websockets", instead="plan B")
            assert _upstream.usable("another", "uvicorn", instead="plan C")
    finally:
        _upstream.forget()
    assert [record.getMessage() for record in caplog.records] == [
        f"a feature falls back to plan B: {FALLBACK_ENV}=websockets"
    ]
