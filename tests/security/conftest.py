"""Fixtures of the attack suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from netrun_ws import _upstream

#: The ways netrun-ws serves a websocket, each of which the transport attack suites must
#: hold under: ``server.ws_protocol: netrun``, ``uvicorn``, and ``netrun`` on the fence's
#: fallback (uvicorn's own protocols, as where its or websockets' internals are not the tested
#: ones).
SERVED = ("netrun", "uvicorn", "netrun-fallback")


@pytest.fixture(params=SERVED)
def served(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The ``server.ws_protocol`` to configure; for ``netrun-fallback`` the fences are shut."""
    name: str = request.param
    if name == "netrun-fallback":
        monkeypatch.setenv(_upstream.FALLBACK_ENV, "all")
        _upstream.forget()
        yield "netrun"
        _upstream.forget()
        return
    yield name
