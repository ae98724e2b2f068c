"""netrun-websocket 1.0's ``netrun.websocket.metrics`` (``netrun_ws.metrics``)."""

from netrun_ws.metric_records import ConnectionMetrics, LatencyMetrics
from netrun_ws.metrics import MetricsCollector

__all__ = ["ConnectionMetrics", "LatencyMetrics", "MetricsCollector"]
