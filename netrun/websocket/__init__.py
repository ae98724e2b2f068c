"""The netrun-websocket import path, kept for existing code: the same objects as ``netrun_ws``.

``netrun`` is a namespace package (no ``__init__.py``) so it coexists with other ``netrun.*``
distributions.
"""

from netrun_ws import *  # noqa: F403
from netrun_ws import REDIS_SUPPORT, __version__  # noqa: F401
from netrun_ws import __all__ as __all__
