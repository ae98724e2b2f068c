"""netrun-websocket 1.0's ``netrun.websocket.protocol``: the models of ``netrun_ws.protocol``."""

from netrun_ws.protocol import *  # noqa: F403
from netrun_ws.protocol import __all__ as __all__
