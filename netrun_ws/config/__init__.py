"""The configuration layer: ``netrun_ws.yaml`` -> validated pydantic models, every mistake located.

>>> loaded = load_config("netrun_ws.yaml", env="production")   # doctest: +SKIP
>>> loaded.config.server.port                                   # doctest: +SKIP
8000

Mistakes raise :class:`ConfigError`, whose ``str()`` is one ``file:line key.path: message`` line
per :class:`ConfigIssue`.
"""

from __future__ import annotations

from netrun_ws.config.errors import ConfigError, ConfigIssue
from netrun_ws.config.loader import (
    DEFAULT_CONFIG_PATH,
    ENV_VARIABLE,
    OVERRIDES_SOURCE,
    LoadedConfig,
    load_config,
    load_config_from_dict,
)
from netrun_ws.config.models import (
    Config,
    ConfigFile,
    HistoryConfig,
    LimitsConfig,
    ServerConfig,
    SlotConfig,
)
from netrun_ws.config.secrets import is_secret_key, mask_secrets, mask_url

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_VARIABLE",
    "OVERRIDES_SOURCE",
    "Config",
    "ConfigError",
    "ConfigFile",
    "ConfigIssue",
    "HistoryConfig",
    "LimitsConfig",
    "LoadedConfig",
    "ServerConfig",
    "SlotConfig",
    "is_secret_key",
    "load_config",
    "load_config_from_dict",
    "mask_secrets",
    "mask_url",
]
