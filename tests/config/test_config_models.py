"""The config models on their own: slot forms, defaults, field checks, documentation, schema."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from netrun_ws.config import Config, ConfigFile, LimitsConfig, ServerConfig, SlotConfig
from netrun_ws.plugins.loading import BUILTINS


def error_types(model: type[BaseModel], data: Any) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [(tuple(error["loc"]), error["type"]) for error in caught.value.errors()]


# --------------------------------------------------------------------------- slots


def test_a_bare_string_slot_is_a_plugin_without_options() -> None:
    slot = SlotConfig.model_validate("jwt")
    assert (slot.plugin, slot.options) == ("jwt", {})


def test_flat_keys_beside_plugin_are_its_options() -> None:
    slot = SlotConfig.model_validate({"plugin": "jwt", "secret": "x", "algorithms": ["HS256"]})
    assert (slot.plugin, slot.options) == ("jwt", {"secret": "x", "algorithms": ["HS256"]})


def test_explicit_options_are_merged_with_flat_keys() -> None:
    slot = SlotConfig(plugin="jwt", options={"secret": "x"})
    assert slot.options == {"secret": "x"}
    merged = SlotConfig.model_validate({"plugin": "jwt", "options": {"a": 1}, "b": 2})
    assert merged.options == {"a": 1, "b": 2}


def test_an_option_given_flat_and_under_options_is_an_error() -> None:
    assert error_types(SlotConfig, {"plugin": "jwt", "options": {"a": 1}, "a": 2}) == [
        ((), "slot_duplicate_option")
    ]
    assert error_types(SlotConfig, {"plugin": "jwt", "options": [1]}) == [((), "slot_options")]
    assert error_types(SlotConfig, {"plugin": "jwt", "options": {"plugin": "x"}}) == [
        ((), "slot_options")
    ]


def test_plugin_name_is_required_and_not_blank() -> None:
    assert error_types(SlotConfig, {"secret": "x"}) == [(("plugin",), "missing")]
    assert error_types(SlotConfig, {"plugin": "  "}) == [(("plugin",), "string_too_short")]
    assert SlotConfig.model_validate(" jwt ").plugin == "jwt"


@pytest.mark.parametrize("value", [None, 5, ["jwt"], True])
def test_a_slot_is_a_string_or_a_mapping(value: Any) -> None:
    assert error_types(SlotConfig, value) == [((), "slot_type")]


def test_slots_dump_flat_and_round_trip() -> None:
    config = Config.model_validate(
        {"auth": {"plugin": "jwt", "secret": "x"}, "metrics": ["log", {"plugin": "json"}]}
    )
    dumped = config.model_dump()
    assert dumped["auth"] == {"plugin": "jwt", "secret": "x"}
    assert dumped["metrics"] == [{"plugin": "log"}, {"plugin": "json"}]
    assert Config.model_validate(dumped) == config


# --------------------------------------------------------------------------- Config sections


def test_defaults() -> None:
    config = Config()
    assert (config.server.host, config.server.port, config.server.path) == (
        "127.0.0.1",
        8000,
        "/ws",
    )
    assert config.server.allowed_origins == []
    assert config.limits.max_connections_per_user == 5
    slots = {name: getattr(config, name).plugin for name in ("auth", "store", "heartbeat")}
    assert slots == {"auth": "anonymous", "store": "memory", "heartbeat": "ping"}
    assert config.reconnect is not None and config.reconnect.plugin == "exponential"
    assert config.protocol.plugin == "json"
    assert [sink.plugin for sink in config.metrics] == ["log"]
    assert (config.plugins_dir, config.plugins) == ("plugins", [])


def test_default_slots_are_not_shared_between_configs() -> None:
    first = Config()
    first.auth.options["secret"] = "x"
    first.metrics[0].options["level"] = "debug"
    second = Config()
    assert second.auth.options == {}
    assert second.metrics[0].options == {}


def test_null_disables_optional_slots_and_empties_lists() -> None:
    config = Config.model_validate(
        {"heartbeat": None, "reconnect": None, "metrics": None, "plugins": None}
    )
    assert (config.heartbeat, config.reconnect, config.metrics, config.plugins) == (
        None,
        None,
        [],
        [],
    )


def test_required_slots_cannot_be_null() -> None:
    assert error_types(Config, {"auth": None, "store": None, "protocol": None}) == [
        (("auth",), "slot_type"),
        (("store",), "slot_type"),
        (("protocol",), "slot_type"),
    ]


def test_a_single_metrics_sink_or_app_plugin_may_be_written_without_a_list() -> None:
    config = Config.model_validate({"metrics": "prometheus", "plugins": {"plugin": "chat"}})
    assert [sink.plugin for sink in config.metrics] == ["prometheus"]
    assert [plugin.plugin for plugin in config.plugins] == ["chat"]


def test_empty_sections_mean_defaults() -> None:
    config = Config.model_validate({"server": None, "limits": None})
    assert config.server == ServerConfig()
    assert config.limits == LimitsConfig()


def test_unknown_keys_are_forbidden_everywhere_but_slots() -> None:
    assert error_types(Config, {"x": 1, "server": {"y": 2}, "limits": {"z": 3}}) == [
        (("server", "y"), "extra_forbidden"),
        (("limits", "z"), "extra_forbidden"),
        (("x",), "extra_forbidden"),
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"port": 0}, [(("port",), "greater_than_equal")]),
        ({"port": 65536}, [(("port",), "less_than_equal")]),
        ({"path": "ws"}, [(("path",), "url_path")]),
        ({"path": "/w s"}, [(("path",), "url_path")]),
        ({"api_prefix": "api"}, [(("api_prefix",), "url_path")]),
        ({"handshake_timeout": 0}, [(("handshake_timeout",), "greater_than")]),
        ({"drain_timeout": -1}, [(("drain_timeout",), "greater_than")]),
        ({"drain_timeout": float("inf")}, [(("drain_timeout",), "finite_number")]),
        ({"host": ""}, [(("host",), "string_too_short")]),
        ({"log_level": "loud"}, [(("log_level",), "literal_error")]),
        (
            {"allowed_origins": ["http://ok:1", "http://bad/", "nope"]},
            [(("allowed_origins", 1), "origin"), (("allowed_origins", 2), "origin")],
        ),
    ],
)
def test_server_checks(data: dict[str, Any], expected: list[Any]) -> None:
    assert error_types(ServerConfig, data) == expected


def test_server_accepts_good_values() -> None:
    server = ServerConfig.model_validate(
        {
            "log_level": "DEBUG",
            "allowed_origins": ["https://app.example.com", "http://localhost:8000"],
            "path": "/socket/v1",
            "port": "9000",
        }
    )
    assert server.log_level == "debug"
    assert server.port == 9000
    assert server.allowed_origins == ["https://app.example.com", "http://localhost:8000"]


@pytest.mark.parametrize(
    "key",
    [
        "max_connections",
        "max_connections_per_user",
        "max_message_bytes",
        "send_queue",
        "max_consecutive_errors",
    ],
)
def test_limits_must_be_positive(key: str) -> None:
    assert error_types(LimitsConfig, {key: 0}) == [((key,), "greater_than")]


def test_messages_per_second_zero_disables_but_negative_is_wrong() -> None:
    assert LimitsConfig(messages_per_second=0).messages_per_second == 0
    assert error_types(LimitsConfig, {"messages_per_second": -1}) == [
        (("messages_per_second",), "greater_than_equal")
    ]
    assert error_types(LimitsConfig, {"messages_per_second": float("nan")}) == [
        (("messages_per_second",), "finite_number")
    ]
    assert error_types(LimitsConfig, {"overflow": "block"}) == [(("overflow",), "literal_error")]


# --------------------------------------------------------------------------- documentation


def _all_models() -> list[type[BaseModel]]:
    return [Config, ConfigFile, ServerConfig, LimitsConfig, SlotConfig]


@pytest.mark.parametrize("model", _all_models())
def test_every_key_is_documented(model: type[BaseModel]) -> None:
    assert model.__doc__
    undocumented = [name for name, info in model.model_fields.items() if not info.description]
    assert undocumented == []


def test_json_schema_describes_every_key_and_the_flat_slot_form() -> None:
    schema = Config.model_json_schema()
    json.dumps(schema)  # serialisable as is
    server = schema["$defs"]["ServerConfig"]["properties"]
    assert server["port"]["default"] == 8000
    assert server["port"]["maximum"] == 65535
    assert all("description" in prop for prop in server.values())
    slot = schema["$defs"]["SlotConfig"]
    assert [form.get("type") for form in slot["anyOf"]] == ["string", "object"]
    assert slot["anyOf"][1]["required"] == ["plugin"]
    assert schema["properties"]["auth"]["default"] == {"plugin": "anonymous"}
    assert schema["properties"]["metrics"]["default"] == [{"plugin": "log"}]
    assert "environments" not in schema["properties"]


def test_the_file_schema_includes_environments() -> None:
    properties = ConfigFile.model_json_schema()["properties"]
    assert "environments" in properties
    assert "deep-merged" in properties["environments"]["description"]


# --------------------------------------------------------------------------- non-finite numbers


def _models_with_float_fields() -> list[tuple[type[BaseModel], str]]:
    """Every float field of the core config models and of the built-in plugins' options."""
    models: list[type[BaseModel]] = [ServerConfig, LimitsConfig]
    for modules in BUILTINS.values():
        for module in modules.values():
            models.append(importlib.import_module(module).Options)
    return [
        (model, name)
        for model in models
        for name, info in model.model_fields.items()
        if "float" in str(info.annotation)
    ]


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), "1e400"])
@pytest.mark.parametrize(
    ("model", "field"),
    _models_with_float_fields(),
    ids=lambda item: item if isinstance(item, str) else f"{item.__module__}.{item.__name__}",
)
def test_no_float_setting_accepts_a_non_finite_number(
    model: type[BaseModel], field: str, value: object
) -> None:
    # YAML reads `.inf` and `.nan` as floats and pydantic turns "1e400" into inf; a timeout,
    # interval or rate of infinity would only fail later, at run time.
    errors = error_types(model, {field: value})
    assert ((field,), "finite_number") in errors
