"""Every host test runs under both ``server.ws_protocol`` values (``netrun`` and ``uvicorn``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _under_each_ws_protocol(served_ws_protocol: str | None) -> None:
    """Parametrises each test by ``served_ws_protocol`` (tests/conftest.py); test_transport.py,
    whose tests name their protocol, overrides that fixture with a single run."""


@pytest.fixture
def netrun_ws_protocol(served_ws_protocol: str) -> str:
    """netrun_ws.testing's servers use the protocol of this run too."""
    return served_ws_protocol
