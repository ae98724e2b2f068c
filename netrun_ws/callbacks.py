"""Calling a user's callback with as many of the offered arguments as its signature takes.

netrun-websocket's README shows one-argument callbacks (``on_failure=lambda attempt: ...``)
where netrun-ws has more to tell (the error). Rather than break those callbacks or add a second
parameter, the library classes look at each callback once, when it is handed over, and pass it
only the leading positional arguments it declares: ``lambda attempt: ...`` gets the attempt,
``lambda attempt, error: ...`` (or ``*args``) gets both.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

__all__ = ["accepted_arguments", "fit_arguments"]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def accepted_arguments(callback: Callable[..., object], offered: int) -> int:
    """How many of ``offered`` leading positional arguments ``callback`` takes.

    ``offered`` when it takes ``*args``, or when its signature cannot be read (some builtins):
    then it is called as before, with everything.
    """
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return offered
    count = 0
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return offered
        if parameter.kind in _POSITIONAL:
            count += 1
    return min(count, offered)


def fit_arguments(callback: Callable[..., object], offered: int) -> Callable[..., object]:
    """``callback`` itself if it takes all ``offered`` arguments, else a wrapper dropping extras.

    Decided once here, so a callback that takes everything costs nothing per call.
    """
    taken = accepted_arguments(callback, offered)
    if taken == offered:
        return callback
    return lambda *args: callback(*args[:taken])
