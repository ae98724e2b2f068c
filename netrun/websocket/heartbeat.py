"""netrun-websocket 1.0's ``netrun.websocket.heartbeat`` (``netrun_ws.heartbeat``)."""

from netrun_ws.heartbeat import HeartbeatConfig, HeartbeatMonitor

__all__ = ["HeartbeatConfig", "HeartbeatMonitor"]
