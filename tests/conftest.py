"""Shared fixtures. Helpers live in tests/support/ so test modules import them explicitly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from netrun_ws import _upstream, auth
from netrun_ws.jwt import jws_segments
from tests.support import server
from tests.support.redis_cluster import redis_cluster  # noqa: F401  (a pytest fixture)
from tests.support.redis_server import redis_server, shared_redis  # noqa: F401  (pytest fixtures)

#: The two values of ``server.ws_protocol``.
WS_PROTOCOLS = ("netrun", "uvicorn")


@pytest.fixture(params=WS_PROTOCOLS)
def served_ws_protocol(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test once per websocket protocol: apps whose config names no
    ``server.ws_protocol`` are served with this one (tests/support/server.py). Every host test
    uses it (tests/host/conftest.py); a module whose tests name their protocol overrides it."""
    protocol: str = request.param
    monkeypatch.setattr(server, "default_ws_protocol", protocol)
    return protocol


@pytest.fixture
def shut_fences(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """netrun-ws decides as if no upstream internals were usable (``NETRUN_WS_UPSTREAM_FALLBACK``
    = all): its fallbacks serve. Decided again after the test."""
    monkeypatch.setenv(_upstream.FALLBACK_ENV, "all")
    _upstream.forget()
    yield
    _upstream.forget()  # the environment is restored after this; the next use decides again


@pytest.fixture(params=["fence open", "fence shut"])
def pyjwt_fence(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Runs the test with netrun-ws's JWT checks built on PyJWT internals, then with PyJWT's own
    (as on a PyJWT outside the tested range): the decisions must be the same."""
    if request.param == "fence shut":
        monkeypatch.setenv(_upstream.FALLBACK_ENV, "pyjwt")
        _upstream.forget()
        monkeypatch.setattr(auth, "_decode", jws_segments.decoder().decode)
    yield request.param
    _upstream.forget()
