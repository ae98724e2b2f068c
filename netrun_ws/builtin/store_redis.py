"""store: redis - several nodes as one service: sessions, presence and delivery through Redis.

``store: {plugin: redis, url: redis://127.0.0.1:6379/0}`` (add ``cluster: true`` for Redis
Cluster, the URL naming any of its nodes). Every node using the same Redis and
``key_prefix`` shares sessions, per-user limits and room presence, and ``send_to_user``, room
publishes and broadcasts reach connections on every node (one PUBLISH per message). Needs the
``redis`` extra (``pip install 'netrun-ws[redis]'``); this module imports without it, so the
plugin can be listed and its options checked anywhere. See :mod:`netrun_ws.redis.store` for
what is guaranteed while Redis is away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from netrun_ws import hookimpl
from netrun_ws.config import mask_url
from netrun_ws.extras import require_extra
from netrun_ws.redis import DEFAULT_BUS_GROUPS, MAX_BUS_GROUPS

if TYPE_CHECKING:
    from netrun_ws.redis import RedisStore

_SCHEMES = ("redis://", "rediss://", "unix://")


class Options(BaseModel):
    # The URL may hold a password: never echo inputs in validation errors.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, allow_inf_nan=False)

    url: SecretStr = Field(
        description="Redis URL, e.g. redis://:PASSWORD@host:6379/0 (use ${REDIS_URL}); "
        "the password is masked in logs and errors."
    )
    key_prefix: str = Field(
        "netrun_ws",
        pattern=r"^[A-Za-z0-9_.:\-]{1,100}$",
        description="Prefix of every key and of the pub/sub channel; nodes sharing it are one "
        "cluster.",
    )
    node_ttl: float = Field(
        10.0, gt=0, description="Seconds a node's presence outlives its last heartbeat."
    )
    node_heartbeat: float = Field(2.0, gt=0, description="Seconds between node heartbeats.")
    probe_interval: float = Field(
        1.0, gt=0, description="Seconds between self-delivery probes through pub/sub."
    )
    probe_timeout: float = Field(
        3.0,
        gt=0,
        description="Seconds without a probe coming back before the node is unready and "
        "resubscribes.",
    )
    connection_ttl: float = Field(
        3600.0, gt=0, description="Seconds a saved session state is kept."
    )
    operation_timeout: float = Field(5.0, gt=0, description="Longest wait for any Redis call.")
    cluster: bool = Field(
        False,
        description="True for Redis Cluster (url names any node): channel history and the bus "
        "spread over `bus_groups` slot groups, each with its own hash tag and shard channel; "
        "presence, sessions and records under the one hash tag {key_prefix} "
        "(docs/deployment.md, Redis Cluster).",
    )
    bus_groups: int = Field(
        DEFAULT_BUS_GROUPS,
        ge=1,
        le=MAX_BUS_GROUPS,
        description="Redis Cluster only: how many slot groups channel history and the bus are "
        "spread over (a channel's group is a stable hash of its name). Part of the key layout "
        "like key_prefix: the same on every node; changing it starts every channel's history "
        "anew. Ignored on one Redis.",
    )

    @field_validator("url")
    @classmethod
    def _redis_url(cls, url: SecretStr) -> SecretStr:
        text = url.get_secret_value()
        if not text:
            raise ValueError("`url` is empty (is its environment variable set?)")
        if not text.lower().startswith(_SCHEMES):
            raise ValueError(
                f"`url` must start with redis://, rediss:// or unix://, got {mask_url(text)!r}"
            )
        return url

    @model_validator(mode="after")
    def _consistent_timings(self) -> Options:
        if self.cluster and self.url.get_secret_value().lower().startswith("unix://"):
            raise ValueError(
                "`cluster: true` needs a redis:// or rediss:// URL naming a cluster node, "
                "not a unix:// socket"
            )
        if self.node_heartbeat >= self.node_ttl:
            raise ValueError(
                f"node_heartbeat ({self.node_heartbeat:g}) must be shorter than node_ttl "
                f"({self.node_ttl:g})"
            )
        if self.probe_timeout < self.probe_interval:
            raise ValueError(
                f"probe_timeout ({self.probe_timeout:g}) must be at least probe_interval "
                f"({self.probe_interval:g})"
            )
        return self


class Plugin:
    def __init__(self) -> None:
        self.options: Options | None = None

    @hookimpl
    def configure(self, options: Options) -> None:
        self.options = options

    @hookimpl
    def provide_store(self) -> RedisStore:
        if self.options is None:
            raise RuntimeError("store redis is not configured: set store.url")
        require_extra("redis.asyncio", "redis", "store: redis", distribution="redis")
        from netrun_ws.redis import RedisStore

        options = self.options
        return RedisStore(
            options.url.get_secret_value(),
            key_prefix=options.key_prefix,
            node_ttl=options.node_ttl,
            node_heartbeat=options.node_heartbeat,
            probe_interval=options.probe_interval,
            probe_timeout=options.probe_timeout,
            connection_ttl=options.connection_ttl,
            operation_timeout=options.operation_timeout,
            cluster=options.cluster,
            bus_groups=options.bus_groups,
        )
