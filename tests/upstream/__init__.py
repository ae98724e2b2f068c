"""Guard tests: what netrun_ws/_upstream/ relies on in uvicorn, websockets and PyJWT still holds
for the installed releases. .ci/run also runs them on the lowest releases pyproject.toml allows.
"""

from __future__ import annotations

from netrun_ws import _upstream


def decide_afresh(upstream: str) -> str | None:
    """What ``_upstream.refusal`` decides for ``upstream`` now (not what it decided before);
    the next use decides again too."""
    _upstream.forget()
    try:
        return _upstream.refusal(upstream)
    finally:
        _upstream.forget()
