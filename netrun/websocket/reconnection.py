"""netrun-websocket 1.0's ``netrun.websocket.reconnection`` (``netrun_ws.reconnection``)."""

from netrun_ws.reconnection import ReconnectionConfig, ReconnectionManager
from netrun_ws.reconnection_tracker import ReconnectionTracker

__all__ = ["ReconnectionConfig", "ReconnectionManager", "ReconnectionTracker"]
