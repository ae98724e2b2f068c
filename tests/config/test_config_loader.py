"""load_config: real YAML files in tmp_path -> validated Config or exact located error lines."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from netrun_ws.config import (
    Config,
    ConfigError,
    ConfigIssue,
    LoadedConfig,
    load_config,
    load_config_from_dict,
)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in tmp_path so issues name the file as a user would type it: netrun_ws.yaml."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(directory: Path, text: str, name: str = "netrun_ws.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def errors_of(
    text: str,
    directory: Path,
    *,
    env: str | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> list[str]:
    """Write ``text`` as netrun_ws.yaml, load it, and return the error's lines."""
    write(directory, text)
    with pytest.raises(ConfigError) as caught:
        load_config("netrun_ws.yaml", env=env, overrides=overrides, environ=environ or {})
    return str(caught.value).splitlines()


# --------------------------------------------------------------------------- file and YAML


def test_empty_file_means_all_defaults(in_tmp: Path) -> None:
    write(in_tmp, "")
    loaded = load_config(environ={})  # path None -> ./netrun_ws.yaml
    assert loaded.config.model_dump(exclude={"plugins_dir"}) == Config().model_dump(
        exclude={"plugins_dir"}
    )
    assert loaded.path == in_tmp / "netrun_ws.yaml"
    assert loaded.env is None
    assert loaded.source == "netrun_ws.yaml"


def test_missing_file_is_one_issue_without_traceback(in_tmp: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("nope.yaml", environ={})
    assert [str(issue) for issue in caught.value.issues] == [
        f"nope.yaml: config file not found (looked for {in_tmp / 'nope.yaml'})"
    ]


def test_directory_instead_of_file(in_tmp: Path) -> None:
    (in_tmp / "conf").mkdir()
    with pytest.raises(ConfigError) as caught:
        load_config("conf", environ={})
    assert str(caught.value) == "conf: is a directory, not a config file"


def test_yaml_syntax_error_is_one_issue_with_its_line(in_tmp: Path) -> None:
    lines = errors_of(
        """
        server:
          host: 127.0.0.1
          port: [8000
        limits: {}
        """,
        in_tmp,
    )
    assert len(lines) == 1
    assert lines[0].startswith("netrun_ws.yaml:4: invalid YAML: ")


def test_bad_indentation_points_at_the_offending_line(in_tmp: Path) -> None:
    lines = errors_of("server:\n  host: a\n port: 1\n", in_tmp)
    assert len(lines) == 1
    assert lines[0].startswith("netrun_ws.yaml:3: invalid YAML: ")


def test_unquoted_variable_in_a_flow_mapping_gets_a_hint(in_tmp: Path) -> None:
    assert errors_of("auth: {plugin: jwt, secret: ${JWT_SECRET}}\n", in_tmp) == [
        "netrun_ws.yaml:1: invalid YAML: expected ',' or '}', but got '{' (while parsing a flow "
        'mapping at line 1); quote values holding ${VAR} inside {...} or [...], e.g. "${VAR}"'
    ]


def test_control_characters_are_reported_with_their_line(in_tmp: Path) -> None:
    assert errors_of("server:\n  host: a\x07b\n", in_tmp) == [
        "netrun_ws.yaml:2: invalid YAML: unacceptable character #x0007 "
        "(special characters are not allowed)"
    ]


def test_several_documents_are_rejected(in_tmp: Path) -> None:
    lines = errors_of("server: {}\n---\nlimits: {}\n", in_tmp)
    assert len(lines) == 1
    assert lines == [
        "netrun_ws.yaml:2: invalid YAML: expected a single document in the stream at line 1, "
        "but found another document"
    ]


def test_document_must_be_a_mapping(in_tmp: Path) -> None:
    assert errors_of("- server\n- limits\n", in_tmp) == [
        "netrun_ws.yaml:1: the config must be a mapping of sections (server, auth, ...), got a list"
    ]


def test_duplicate_key_is_reported_at_the_second_one(in_tmp: Path) -> None:
    assert errors_of("server:\n  port: 1\n  port: 2\n", in_tmp) == [
        "netrun_ws.yaml:3 server.port: duplicate key 'port' (first given at line 2)"
    ]


def test_anchors_and_merge_keys_work(in_tmp: Path) -> None:
    write(
        in_tmp,
        """
        metrics:
          - &log {plugin: log, level: info}
        plugins:
          - {<<: *log, plugin: chat}
        """,
    )
    loaded = load_config(environ={})
    assert (loaded.config.plugins[0].plugin, loaded.config.plugins[0].options) == (
        "chat",
        {"level": "info"},
    )
    assert loaded.line_of("plugins.0.plugin") == 4
    assert loaded.line_of("plugins.0.level") == 2  # where the anchored value was written


# --------------------------------------------------------------------------- validation issues


def test_unknown_key_suggests_the_closest_known_key(in_tmp: Path) -> None:
    assert errors_of("server:\n  host: 0.0.0.0\n  prot: 9000\n", in_tmp) == [
        "netrun_ws.yaml:3 server.prot: unknown key 'prot'; did you mean 'port'?"
    ]


def test_unknown_key_without_a_close_match_lists_the_known_keys(in_tmp: Path) -> None:
    assert errors_of("limits:\n  zzz: 1\n", in_tmp) == [
        "netrun_ws.yaml:2 limits.zzz: unknown key 'zzz'; expected one of: max_connections, "
        "max_connections_per_user, max_connections_per_ip, max_message_bytes, send_queue, "
        "overflow, messages_per_second, max_consecutive_errors, frames_per_second, "
        "request_timeout, max_pending_requests, max_pending_requests_per_ip"
    ]


def test_unknown_top_level_section(in_tmp: Path) -> None:
    assert errors_of("server: {}\nheartbeats: {plugin: ping}\n", in_tmp) == [
        "netrun_ws.yaml:2 heartbeats: unknown key 'heartbeats'; did you mean 'heartbeat'?"
    ]


def test_wrong_type(in_tmp: Path) -> None:
    assert errors_of("server:\n  port: eighty\n", in_tmp) == [
        "netrun_ws.yaml:2 server.port: input should be a valid integer, unable to parse string "
        "as an integer (got 'eighty')"
    ]


def test_out_of_range(in_tmp: Path) -> None:
    assert errors_of("server:\n  port: 70000\n", in_tmp) == [
        "netrun_ws.yaml:2 server.port: input should be less than or equal to 65535 (got 70000)"
    ]


def test_value_not_among_the_choices(in_tmp: Path) -> None:
    assert errors_of("limits:\n  overflow: block\n", in_tmp) == [
        "netrun_ws.yaml:2 limits.overflow: input should be 'disconnect' or 'drop_oldest' "
        "(got 'block')"
    ]


def test_slot_without_plugin_points_at_the_slot(in_tmp: Path) -> None:
    assert errors_of("server: {}\nauth:\n  secret: x\n", in_tmp) == [
        "netrun_ws.yaml:2 auth.plugin: field required"
    ]


def test_list_items_are_numbered_in_the_key_path(in_tmp: Path) -> None:
    assert errors_of("metrics:\n  - log\n  - plugin: 5\n", in_tmp) == [
        "netrun_ws.yaml:3 metrics.1.plugin: input should be a valid string (got 5)"
    ]


def test_url_passwords_are_masked_when_a_value_is_echoed(in_tmp: Path) -> None:
    assert errors_of("server:\n  port: 'redis://:hunter2@h/0'\n", in_tmp) == [
        "netrun_ws.yaml:2 server.port: input should be a valid integer, unable to parse string "
        "as an integer (got 'redis://:***@h/0')"
    ]


def test_every_mistake_is_reported_at_once_in_file_order(in_tmp: Path) -> None:
    lines = errors_of(
        """
        server:
          prot: 8000
          port: ${PORT}
          log_level: verbose
        limits:
          max_connections: 0
        auth: {plugin: jwt, secret: "${SECRET}"}
        metrics:
          - log
          - [prometheus]
        environments:
          production: {sotre: {plugin: redis}}
        """,
        in_tmp,
        environ={"PORT": "not-a-port"},
    )
    assert lines == [
        "netrun_ws.yaml:2 server.prot: unknown key 'prot'; did you mean 'port'?",
        "netrun_ws.yaml:3 server.port: input should be a valid integer, unable to parse string "
        "as an integer (got 'not-a-port')",
        "netrun_ws.yaml:4 server.log_level: input should be 'critical', 'error', 'warning', "
        "'info', 'debug' or 'trace' (got 'verbose')",
        "netrun_ws.yaml:6 limits.max_connections: input should be greater than 0 (got 0)",
        "netrun_ws.yaml:7 auth.secret: environment variable 'SECRET' is not set "
        "(set it, or give a default: ${SECRET:-default})",
        "netrun_ws.yaml:10 metrics.1: expected a plugin name or a mapping with a 'plugin' key, "
        "got a list",
        "netrun_ws.yaml:12 environments.production.sotre: unknown key 'sotre'; "
        "did you mean 'store'?",
    ]


def test_issues_are_structured(in_tmp: Path) -> None:
    write(in_tmp, "server:\n  port: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(environ={})
    assert caught.value.issues == [
        ConfigIssue(
            "netrun_ws.yaml", 2, "server.port", "input should be greater than or equal to 1 (got 0)"
        )
    ]


# --------------------------------------------------------------------------- interpolation


def test_whole_value_variable_is_coerced_by_the_field_type(in_tmp: Path) -> None:
    write(in_tmp, "server:\n  port: ${PORT}\n  permessage_deflate: ${DEFLATE}\n")
    config = load_config(environ={"PORT": "8123", "DEFLATE": "true"}).config
    assert config.server.port == 8123
    assert config.server.permessage_deflate is True


def test_defaults_several_references_and_escapes(in_tmp: Path) -> None:
    write(
        in_tmp,
        """
        server:
          host: ${HOST:-0.0.0.0}
          path: /${PREFIX}/${NAME:-ws}
        store:
          plugin: redis
          url: redis://${REDIS_HOST:-localhost}:${REDIS_PORT:-6379}/0
          note: "costs $$5, literally $${NOT_A_VAR}, and a lone $ stays"
          empty_uses_default: ${EMPTY:-fallback}
          empty_without_default: x${EMPTY}x
        """,
    )
    config = load_config(environ={"PREFIX": "v1", "REDIS_PORT": "6380", "EMPTY": ""}).config
    assert config.server.host == "0.0.0.0"
    assert config.server.path == "/v1/ws"
    assert config.store.options == {
        "url": "redis://localhost:6380/0",
        "note": "costs $5, literally ${NOT_A_VAR}, and a lone $ stays",
        "empty_uses_default": "fallback",
        "empty_without_default": "xx",
    }


def test_missing_variable_is_an_error_at_its_key_naming_the_variable(in_tmp: Path) -> None:
    assert errors_of("server:\n  host: a\n  port: ${NETRUN_PORT}\n", in_tmp) == [
        "netrun_ws.yaml:3 server.port: environment variable 'NETRUN_PORT' is not set "
        "(set it, or give a default: ${NETRUN_PORT:-default})"
    ]


def test_every_missing_variable_in_one_string_is_reported(in_tmp: Path) -> None:
    lines = errors_of("store: {plugin: redis, url: 'redis://${U}:${P}@h'}\n", in_tmp)
    assert lines == [
        "netrun_ws.yaml:1 store.url: environment variable 'U' is not set "
        "(set it, or give a default: ${U:-default})",
        "netrun_ws.yaml:1 store.url: environment variable 'P' is not set "
        "(set it, or give a default: ${P:-default})",
    ]


def test_malformed_references(in_tmp: Path) -> None:
    assert errors_of("server:\n  host: ${1BAD}\n  path: /${OPEN\n", in_tmp) == [
        "netrun_ws.yaml:2 server.host: invalid variable reference '${1BAD}'; "
        "expected ${NAME} or ${NAME:-default}",
        "netrun_ws.yaml:3 server.path: unterminated '${' (missing '}'; write '$$' for a "
        "literal '$')",
    ]


def test_keys_are_not_interpolated(in_tmp: Path) -> None:
    write(in_tmp, "store:\n  plugin: memory\n  ${X}: 1\n")
    assert load_config(environ={"X": "y"}).config.store.options == {"${X}": 1}


# --------------------------------------------------------------------------- environments

ENVIRONMENTS = """
server:
  port: 8000
store:
  plugin: memory
  max_sessions: 100
auth: anonymous
metrics: [log, json]
environments:
  production:
    server:
      host: 0.0.0.0
    store: {plugin: redis, url: "${REDIS_URL}"}
    auth: {plugin: jwt, secret: "${JWT_SECRET}"}
    metrics: [prometheus]
  staging:
    store: {max_sessions: 5}
    heartbeat: {interval: 5}
"""


def test_env_argument_selects_an_overlay(in_tmp: Path) -> None:
    write(in_tmp, ENVIRONMENTS)
    loaded = load_config(
        env="production", environ={"REDIS_URL": "redis://r:6379/0", "JWT_SECRET": "k"}
    )
    config = loaded.config
    assert loaded.env == "production"
    assert (config.server.host, config.server.port) == ("0.0.0.0", 8000)
    # The plugin changed, so memory's max_sessions is not inherited.
    assert (config.store.plugin, config.store.options) == ("redis", {"url": "redis://r:6379/0"})
    assert (config.auth.plugin, config.auth.options) == ("jwt", {"secret": "k"})
    assert [sink.plugin for sink in config.metrics] == ["prometheus"]
    # Keys the overlay wrote are located in the overlay; the rest where the base wrote them.
    lines = {key: loaded.line_of(key) for key in ("server", "server.port", "server.host")}
    assert lines == {"server": 1, "server.port": 2, "server.host": 11}
    lines = {key: loaded.line_of(key) for key in ("store", "store.plugin", "metrics.0")}
    assert lines == {"store": 12, "store.plugin": 12, "metrics.0": 14}
    assert loaded.line_of("store.max_sessions") == 12  # gone with memory: the slot's line


def test_netrun_ws_env_selects_an_overlay_and_env_argument_wins(in_tmp: Path) -> None:
    write(in_tmp, ENVIRONMENTS)
    from_environ = load_config(environ={"NETRUN_WS_ENV": "staging"})
    assert from_environ.env == "staging"
    assert from_environ.config.store.options == {"max_sessions": 5}
    explicit = load_config(env="staging", environ={"NETRUN_WS_ENV": "production"})
    assert explicit.env == "staging"


def test_overlay_without_plugin_adds_options_to_the_current_plugin(in_tmp: Path) -> None:
    write(in_tmp, ENVIRONMENTS)
    config = load_config(env="staging", environ={}).config
    assert (config.store.plugin, config.store.options) == ("memory", {"max_sessions": 5})
    # heartbeat is not in the base: the overlay's options go to the default plugin.
    assert config.heartbeat is not None
    assert (config.heartbeat.plugin, config.heartbeat.options) == ("ping", {"interval": 5})
    loaded = load_config(env="staging", environ={})
    lines = {key: loaded.line_of(key) for key in ("store", "store.plugin", "store.max_sessions")}
    assert lines == {"store": 3, "store.plugin": 4, "store.max_sessions": 16}
    assert (loaded.line_of("heartbeat"), loaded.line_of("heartbeat.interval")) == (17, 17)


def test_variables_of_an_unselected_environment_are_not_needed(in_tmp: Path) -> None:
    write(in_tmp, ENVIRONMENTS)
    assert load_config(environ={}).config.store.plugin == "memory"


def test_unknown_environment_lists_the_defined_ones(in_tmp: Path) -> None:
    assert errors_of(ENVIRONMENTS, in_tmp, env="prod") == [
        "netrun_ws.yaml:8 environments: unknown environment 'prod'; did you mean "
        "'production'? (defined: production, staging)"
    ]
    assert errors_of(ENVIRONMENTS, in_tmp, environ={"NETRUN_WS_ENV": "qa"}) == [
        "netrun_ws.yaml:8 environments: unknown environment 'qa' (from NETRUN_WS_ENV) "
        "(defined: production, staging)"
    ]


def test_unknown_environment_when_none_are_defined(in_tmp: Path) -> None:
    assert errors_of("server: {}\n", in_tmp, env="production") == [
        "netrun_ws.yaml environments: unknown environment 'production': the config defines "
        "no environments"
    ]


def test_overlay_mistakes_point_at_the_overlay_lines(in_tmp: Path) -> None:
    text = """
    server:
      port: 8000
    environments:
      production:
        server:
          port: high
        store: {plugin: redis, url: "${REDIS_URL}"}
    """
    assert errors_of(text, in_tmp, env="production") == [
        "netrun_ws.yaml:6 server.port: input should be a valid integer, unable to parse string "
        "as an integer (got 'high')",
        "netrun_ws.yaml:7 store.url: environment variable 'REDIS_URL' is not set "
        "(set it, or give a default: ${REDIS_URL:-default})",
    ]


def test_malformed_environments_section(in_tmp: Path) -> None:
    assert errors_of("environments: [production]\n", in_tmp) == [
        "netrun_ws.yaml:1 environments: must be a mapping of environment names to overlays, "
        "got a list"
    ]
    assert errors_of("environments:\n  production: redis\n", in_tmp) == [
        "netrun_ws.yaml:2 environments.production: an environment overlay must be a mapping, "
        "got a string"
    ]


# --------------------------------------------------------------------------- overrides


def test_overrides_are_merged_last(in_tmp: Path) -> None:
    write(in_tmp, ENVIRONMENTS)
    loaded = load_config(
        env="staging",
        overrides={"server": {"host": "0.0.0.0", "port": 9000}, "store": {"plugin": "redis"}},
        environ={},
    )
    server = loaded.config.server
    assert (server.host, server.port, server.path) == ("0.0.0.0", 9000, "/ws")
    assert (loaded.config.store.plugin, loaded.config.store.options) == ("redis", {})


def test_override_mistakes_name_the_overrides(in_tmp: Path) -> None:
    assert errors_of("server:\n  port: 8000\n", in_tmp, overrides={"server": {"port": 0}}) == [
        "<overrides> server.port: input should be greater than or equal to 1 (got 0)"
    ]


def test_an_overridden_value_needs_no_variable(in_tmp: Path) -> None:
    assert errors_of(
        "server:\n  port: ${PORT}\n  host: ${HOST}\n",
        in_tmp,
        overrides={"server": {"port": 9000}},
    ) == [
        "netrun_ws.yaml:3 server.host: environment variable 'HOST' is not set "
        "(set it, or give a default: ${HOST:-default})"
    ]
    loaded = load_config(overrides={"server": {"port": 9000, "host": "h"}}, environ={})
    assert (loaded.config.server.port, loaded.config.server.host) == (9000, "h")


def test_override_values_are_not_interpolated(in_tmp: Path) -> None:
    write(in_tmp, "")
    loaded = load_config(overrides={"server": {"host": "${HOST}"}}, environ={"HOST": "x"})
    assert loaded.config.server.host == "${HOST}"


# --------------------------------------------------------------------------- plugins_dir


def test_plugins_dir_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "my_plugins").mkdir(parents=True)
    write(project, "plugins_dir: my_plugins\n")
    monkeypatch.chdir(tmp_path)
    loaded = load_config("project/netrun_ws.yaml", environ={})
    assert loaded.plugins_dir == project / "my_plugins"
    assert loaded.plugins_dir.is_absolute()
    assert loaded.config.plugins_dir == str(project / "my_plugins")
    assert loaded.path == project / "netrun_ws.yaml"


def test_default_plugins_dir_need_not_exist(in_tmp: Path) -> None:
    write(in_tmp, "")
    assert load_config(environ={}).plugins_dir == in_tmp / "plugins"


def test_explicit_plugins_dir_must_exist(in_tmp: Path) -> None:
    assert errors_of("plugins_dir: plugns\n", in_tmp) == [
        f"netrun_ws.yaml:1 plugins_dir: plugins_dir '{in_tmp / 'plugns'}' is not a directory"
    ]


def test_null_plugins_dir_disables_it(in_tmp: Path) -> None:
    write(in_tmp, "plugins_dir: null\n")
    loaded = load_config(environ={})
    assert loaded.plugins_dir is None
    assert loaded.config.plugins_dir is None


# --------------------------------------------------------------------------- host helpers


class JwtOptions(BaseModel):
    secret: str
    algorithms: list[str] = Field(default=["HS256"])
    token_expiry_seconds: int = Field(default=3600, gt=0)


JWT_FILE = """
server:
  port: 8000
auth:
  plugin: jwt
  algorithms: HS256
  token_expiry_seconds: -5
  algoritms: [HS512]
metrics:
  - plugin: prometheus
    path: 7
"""


def loaded_jwt(directory: Path) -> LoadedConfig:
    write(directory, JWT_FILE)
    return load_config(environ={})


def test_validate_options_locates_every_mistake(in_tmp: Path) -> None:
    loaded = loaded_jwt(in_tmp)
    with pytest.raises(ConfigError) as caught:
        loaded.validate_options("auth", JwtOptions, loaded.config.auth.options)
    assert str(caught.value).splitlines() == [
        "netrun_ws.yaml:3 auth.secret: field required",
        "netrun_ws.yaml:5 auth.algorithms: input should be a valid list (got 'HS256')",
        "netrun_ws.yaml:6 auth.token_expiry_seconds: input should be greater than 0 (got -5)",
        "netrun_ws.yaml:7 auth.algoritms: unknown key 'algoritms'; did you mean 'algorithms'?",
    ]


def test_validate_options_in_a_list_slot_and_forbidding_models(in_tmp: Path) -> None:
    class PrometheusOptions(BaseModel):
        model_config = ConfigDict(extra="forbid")
        path: str = "/metrics"

    loaded = loaded_jwt(in_tmp)
    with pytest.raises(ConfigError) as caught:
        loaded.validate_options("metrics.0", PrometheusOptions, {"path": 7, "paht": "/m"})
    assert [str(issue) for issue in caught.value.issues] == [
        "netrun_ws.yaml:9 metrics.0.paht: unknown key 'paht'; did you mean 'path'?",
        "netrun_ws.yaml:10 metrics.0.path: input should be a valid string (got 7)",
    ]


def test_validate_options_returns_the_model_and_respects_extra_allow(in_tmp: Path) -> None:
    class Open(BaseModel):
        model_config = ConfigDict(extra="allow")
        size: int = 1

    loaded = loaded_jwt(in_tmp)
    options = loaded.validate_options("store", Open, {"size": "3", "anything": True})
    assert isinstance(options, Open)
    assert options.size == 3
    assert options.model_extra == {"anything": True}


def test_validate_options_never_echoes_secrets(in_tmp: Path) -> None:
    class Options(BaseModel):
        secret: int

    loaded = loaded_jwt(in_tmp)
    with pytest.raises(ConfigError) as caught:
        loaded.validate_options("auth", Options, {"secret": "hunter2"})
    assert str(caught.value) == (
        "netrun_ws.yaml:3 auth.secret: input should be a valid integer, unable to parse string "
        "as an integer"
    )


def test_line_of_and_issue_for_the_hosts_own_checks(in_tmp: Path) -> None:
    loaded = loaded_jwt(in_tmp)
    assert loaded.line_of("auth") == 3
    assert loaded.line_of("auth.plugin") == 4
    assert loaded.line_of("metrics.0.path") == 10
    assert loaded.line_of("auth.secret") == 3  # not written: its slot's line
    assert loaded.line_of("limits.send_queue") is None  # a default, nowhere in the file
    issue = loaded.issue("auth.plugin", "unknown plugin 'jwtt'")
    assert str(issue) == "netrun_ws.yaml:4 auth.plugin: unknown plugin 'jwtt'"
    assert str(ConfigError([issue])) == str(issue)


def test_masked_config_hides_secrets(in_tmp: Path) -> None:
    write(
        in_tmp,
        "auth: {plugin: jwt, secret: s3cr3t}\nstore: {plugin: redis, url: 'redis://:pw@h/0'}\n",
    )
    masked = load_config(environ={}).masked()
    assert masked["auth"] == {"plugin": "jwt", "secret": "***"}
    assert masked["store"] == {"plugin": "redis", "url": "redis://:***@h/0"}
    assert masked["server"]["port"] == 8000


# --------------------------------------------------------------------------- from a dict


def test_load_config_from_dict_uses_the_same_rules(tmp_path: Path) -> None:
    data = {
        "server": {"port": "${PORT}"},
        "plugins_dir": None,
        "environments": {"production": {"auth": {"plugin": "jwt", "secret": "x"}}},
    }
    loaded = load_config_from_dict(data, env="production", environ={"PORT": "9001"})
    assert loaded.config.server.port == 9001
    assert loaded.config.auth.options == {"secret": "x"}
    assert loaded.path is None
    assert data["server"] == {"port": "${PORT}"}  # the caller's dict is not modified


def test_load_config_from_dict_reports_with_its_source_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_from_dict({"server": {"prot": 1}, "limits": []}, source="app.py", environ={})
    assert str(caught.value).splitlines() == [
        "app.py limits: input should be a valid dictionary or instance of LimitsConfig",
        "app.py server.prot: unknown key 'prot'; did you mean 'port'?",
    ]


def test_load_config_from_dict_resolves_plugins_dir_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    loaded = load_config_from_dict(
        {"plugins_dir": "p", "store": {"plugin": "memory", "n": "$$"}},
        base_dir=tmp_path,
        interpolate=False,
    )
    assert loaded.plugins_dir == tmp_path / "p"
    assert loaded.config.store.options == {"n": "$$"}
