"""The fence: every use netrun-ws makes of another library's internals, and its way back out.

netrun-ws's fast paths build on names that uvicorn, websockets and PyJWT do not document
(docs/architecture.md, "Upstream internals, fenced"). Each of those names is imported in one
module here, one per upstream: :mod:`.uvicorn`, :mod:`.uvicorn_httptools`, :mod:`.websockets`,
:mod:`.pyjwt`. Each states the releases it was tested with and what it relies on, and has a
``refusal()`` that checks, when first asked, that the installed release still offers it.

The rest of netrun-ws imports those names only from here, and only once :func:`usable` said
yes. Otherwise it takes a path built on public API alone, with the same behaviour on the wire,
and one warning line says so: ``server.ws_protocol: netrun`` is served by uvicorn's own
protocols, and PyJWT checks JWT segments and HS* secrets itself. ``NETRUN_WS_UPSTREAM_FALLBACK``
(``all``, or a comma-separated list of the modules' names) forces those paths, for tests and
for anyone who would rather not run on internals. tests/upstream/ holds the guard tests that
fail when an upstream release changes what a fence relies on.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import os
import re
from dataclasses import dataclass

__all__ = ["FALLBACK_ENV", "UPSTREAMS", "ReleaseRange", "forget", "refusal", "usable"]

#: Environment variable naming the fences to keep shut (``all``, or names from UPSTREAMS).
FALLBACK_ENV = "NETRUN_WS_UPSTREAM_FALLBACK"
#: The fence modules, by name.
UPSTREAMS = ("uvicorn", "uvicorn_httptools", "websockets", "pyjwt")

logger = logging.getLogger(__name__)

_RELEASE = re.compile(r"\d+(?:\.\d+)*")


@dataclass(frozen=True)
class ReleaseRange:
    """The releases of one distribution a fence was tested with: ``low <= release < high``.

    pyproject.toml allows the same range (tests/upstream/test_bounds.py keeps the two equal).
    """

    distribution: str
    low: tuple[int, ...]
    high: tuple[int, ...]

    def __str__(self) -> str:
        return f">={_dotted(self.low)},<{_dotted(self.high)}"

    def refusal(self, version: str | None = None) -> str | None:
        """Why ``version`` (by default the installed one) of the distribution is not one the
        fence was tested with, or None."""
        version = version or importlib.metadata.version(self.distribution)
        found = _RELEASE.match(version)
        release = tuple(int(part) for part in found.group().split(".")) if found else ()
        if self.low <= release < self.high:
            return None
        return f"{self.distribution} {version} is not in the tested range {self}"


def _dotted(release: tuple[int, ...]) -> str:
    return ".".join(map(str, release))


@functools.cache
def refusal(upstream: str) -> str | None:
    """Why netrun-ws must not use ``upstream``'s internals here (one line), or None if it may.

    ``upstream`` is a name from :data:`UPSTREAMS`. Decided once per process (:func:`forget`).
    """
    forced = {name.strip() for name in os.environ.get(FALLBACK_ENV, "").split(",")}
    if upstream in forced or "all" in forced:
        return f"{FALLBACK_ENV}={os.environ[FALLBACK_ENV]}"
    try:
        fence = importlib.import_module(f"{__name__}.{upstream}")
        reason: str | None = fence.refusal()
    except Exception as error:  # a renamed module or name, a changed base class: not usable
        reason = f"{type(error).__name__}: {error}"
    return reason.splitlines()[0] if reason else None


def usable(feature: str, *upstreams: str, instead: str) -> bool:
    """Whether ``feature`` may use the internals of ``upstreams``. If not, a warning (once per
    feature) says that ``instead`` serves, and why."""
    for upstream in upstreams:
        reason = refusal(upstream)
        if reason is not None:
            _warn(f"{feature} falls back to {instead}: {reason}")
            return False
    return True


@functools.cache
def _warn(message: str) -> None:
    logger.warning("%s", message)


def forget() -> None:
    """Decide again, and warn again (tests, after changing :data:`FALLBACK_ENV`)."""
    refusal.cache_clear()
    _warn.cache_clear()
