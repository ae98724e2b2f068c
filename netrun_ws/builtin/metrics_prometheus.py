"""metrics: prometheus - prometheus-client counters and gauges, text exposition at ``path``.

Each app gets its own CollectorRegistry, so several apps in one process never collide.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from netrun_ws import hookimpl
from netrun_ws.connection import Connection
from netrun_ws.host import Host
from netrun_ws.protocol import ProtocolError


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    path: str = Field("/metrics", pattern=r"^/", description="Path of the exposition endpoint.")
    prefix: str = Field(
        "netrun_ws", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", description="Name prefix."
    )


class _TrafficCollector(Collector):
    """Frames and bytes received and messages sent, read from the connections' own counters at
    scrape time: the per-message path calls no metrics hook."""

    def __init__(self, host: Host, prefix: str) -> None:
        self.host = host
        self.prefix = prefix

    def collect(self) -> Iterator[Metric]:
        traffic = self.host.stats().connections
        p = self.prefix
        for name, documentation, value in (
            ("messages_received", "Frames received", traffic.messages_received),
            ("received_bytes", "Bytes received", traffic.bytes_received),
            ("messages_sent", "Messages written to clients", traffic.messages_sent),
            ("sent_bytes", "Bytes written to clients", traffic.bytes_sent),
        ):
            yield CounterMetricFamily(f"{p}_{name}", documentation, value=value)


class Plugin:
    def __init__(self) -> None:
        self.options = Options()
        self.registry = CollectorRegistry()
        self.host: Host | None = None

    @hookimpl
    def configure(self, host: Host, options: Options) -> None:
        self.host = host
        self.options = options
        p, r = options.prefix, self.registry
        self.connections = Gauge(f"{p}_connections", "Open connections", registry=r)
        self.connects = Counter(f"{p}_connections_opened", "Connections accepted", registry=r)
        self.disconnects = Counter(
            f"{p}_connections_closed", "Connections closed, by close code", ["code"], registry=r
        )
        self._disconnects_by_code: dict[int, Counter] = {}
        # Traffic counts come from the connections' own counters at scrape time: a prometheus
        # Counter takes a lock on every increment, and a hook per message costs more than the count.
        r.register(_TrafficCollector(host, p))
        self.invalid = Counter(
            f"{p}_invalid_messages", "Invalid frames, by error code", ["code"], registry=r
        )
        self.errors = Counter(f"{p}_errors", "Plugin or host errors", registry=r)
        # Read from the host's stats at scrape time (no per-message cost).
        self.backpressure = Gauge(
            f"{p}_backpressure",
            "Outbound queue state since start: queued_frames, dropped_messages (drop_oldest), "
            "slow_consumer_disconnects, failed_sends",
            ["kind"],
            registry=r,
        )
        self.store_counters = Gauge(
            f"{p}_store",
            "Store counters (published, publish_failures, gaps, ...)",
            ["counter"],
            registry=r,
        )
        self.auth_refused = Counter(
            f"{p}_auth_refused",
            "Clients refused by authentication, by HTTP status (before accept) or close code",
            ["status"],
            registry=r,
        )
        self.gaps = Counter(
            f"{p}_delivery_gaps", "Windows in which cross-node messages may be lost", registry=r
        )

    @hookimpl
    def register_routes(self) -> list[BaseRoute]:
        return [Route(self.options.path, self._endpoint, methods=["GET"])]

    async def _endpoint(self, request: Request) -> Response:
        if self.host is not None:
            stats = self.host.stats()
            queues = stats.connections
            for kind, value in (
                ("queued_frames", queues.queued_frames),
                ("dropped_messages", queues.dropped_messages),
                ("slow_consumer_disconnects", queues.slow_consumer_disconnects),
                ("failed_sends", queues.failed_sends),
            ):
                self.backpressure.labels(kind=kind).set(value)
            for name, counter in (stats.store or {}).items():
                if isinstance(counter, (int, float)) and not isinstance(counter, bool):
                    self.store_counters.labels(counter=name).set(counter)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    @hookimpl
    def on_connect(self) -> None:
        self.connects.inc()
        self.connections.inc()

    @hookimpl
    def on_invalid_message(self, error: ProtocolError) -> None:
        self.invalid.labels(code=str(error.code)).inc()

    @hookimpl
    def on_error(self) -> None:
        self.errors.inc()

    @hookimpl
    def on_auth_refused(self, status: int) -> None:
        self.auth_refused.labels(status=str(status)).inc()

    @hookimpl
    def on_delivery_gap(self) -> None:
        self.gaps.inc()

    @hookimpl
    def on_disconnect(self, connection: Connection, code: int) -> None:
        self.connections.dec()
        # labels() checks and locks on every call; a code's child counter is the same each time.
        counter = self._disconnects_by_code.get(code)
        if counter is None:
            counter = self.disconnects.labels(code=str(code))
            if len(self._disconnects_by_code) < 256:  # close codes: a few in practice
                self._disconnects_by_code[code] = counter
        counter.inc()
