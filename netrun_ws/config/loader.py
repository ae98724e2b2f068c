"""Load ``netrun_ws.yaml`` (or a dict) into a validated :class:`Config`, reporting every mistake.

Order: read and parse the YAML (recording each key's line) -> pick the environment overlay
(``env=``, else ``NETRUN_WS_ENV``) and deep-merge it over the base -> substitute ``${VAR}`` in
string values -> deep-merge ``overrides`` (CLI flags; not interpolated, and a value they replace
needs no variable) -> validate with pydantic -> resolve ``plugins_dir`` against the config file's
directory. Mistakes found at any step are collected and raised together as one
:class:`ConfigError`; only an unreadable file, a YAML syntax error or a non-mapping document stop
early, since nothing after them can be checked.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from netrun_ws.config.errors import ConfigError, ConfigIssue
from netrun_ws.config.interpolation import interpolate_tree
from netrun_ws.config.locations import (
    KeyPath,
    Location,
    SourceMap,
    normal_path,
    parse_key_path,
    paths_under,
)
from netrun_ws.config.merge import merge_layer
from netrun_ws.config.models import Config
from netrun_ws.config.secrets import mask_secrets
from netrun_ws.config.slot_table import SLOTS
from netrun_ws.config.validation import (
    field_keys,
    issues_from_validation_error,
    unknown_key_message,
    unknown_keys,
)
from netrun_ws.config.yaml_source import parse_yaml, read_config_text

DEFAULT_CONFIG_PATH = "netrun_ws.yaml"
ENV_VARIABLE = "NETRUN_WS_ENV"
OVERRIDES_SOURCE = "<overrides>"

_Options = TypeVar("_Options", bound=BaseModel)


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where each of its values was written."""

    config: Config
    path: Path | None
    """The config file, absolute; None when loaded from a dict."""
    env: str | None
    """The environment whose overlay was applied, if any."""
    plugins_dir: Path | None
    """``config.plugins_dir`` resolved to an absolute path; None when disabled."""
    source: str
    """How issues name the config: the path as given, or the ``source`` of a dict."""
    sources: SourceMap = field(repr=False, compare=False)
    base_dir: Path | None = None
    """Where relative paths in the config resolve: the config file's directory, or for a dict
    the ``base_dir`` it was loaded with (default: the current directory)."""

    def line_of(self, key_path: str) -> int | None:
        """The 1-based line of ``key_path`` (e.g. ``"metrics.0.plugin"``).

        A key not written in the file (a default) gets its nearest written ancestor's line, so
        ``auth.secret`` of a slot without one points at the ``auth`` line; None if no ancestor
        was written in the file either (or it came from ``overrides``).
        """
        return self.sources.locate(parse_key_path(key_path)).line

    def issue(self, key_path: str, message: str) -> ConfigIssue:
        """An issue located like :meth:`line_of`, for the host's own checks (unknown plugin...)."""
        return self.sources.issue(parse_key_path(key_path), message)

    def validate_options(
        self, key_path: str, model: type[_Options], options: Mapping[str, Any]
    ) -> _Options:
        """Validate a plugin's ``options`` (from the slot at ``key_path``) against its model.

        Raises :class:`ConfigError` with one issue per mistake at ``key_path.field`` lines. Unknown
        options are errors unless ``model`` sets ``extra="allow"`` (a model left at pydantic's
        default "ignore" is treated as "forbid"; nested models follow their own setting).
        """
        prefix = parse_key_path(key_path)
        issues: list[ConfigIssue] = []
        if model.model_config.get("extra") in (None, "ignore"):
            known = field_keys(model)
            issues.extend(
                self.sources.issue((*prefix, key), unknown_key_message(key, known))
                for key in options
                if key not in known
            )
        try:
            # Plugins resolve relative paths in their options against the config's directory.
            context = {"base_dir": self.base_dir}
            validated = model.model_validate(dict(options), context=context)
        except ValidationError as error:
            issues.extend(issues_from_validation_error(error, model, self.sources, prefix))
        if issues:
            raise ConfigError(issues)
        return validated

    def masked(self) -> dict[str, Any]:
        """The config as plain data with secrets masked: safe to print or log."""
        return mask_secrets(self.config.model_dump(mode="json"))


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Load and validate a config file (default ``./netrun_ws.yaml``); empty means all defaults.

    ``environ`` (default ``os.environ``) supplies ``${VAR}`` values and ``NETRUN_WS_ENV``.
    Raises :class:`ConfigError` listing every mistake.
    """
    display = DEFAULT_CONFIG_PATH if path is None else os.fspath(path)
    file = Path(display).expanduser()
    parsed = parse_yaml(read_config_text(file, display), display)
    return _build(
        parsed.data,
        SourceMap(display, parsed.locations),
        parsed.issues,
        path=file.absolute(),
        base_dir=file.absolute().parent,
        env=env,
        overrides=overrides,
        environ=os.environ if environ is None else environ,
        interpolate=True,
    )


def load_config_from_dict(
    data: Mapping[str, Any] | None,
    *,
    source: str = "<dict>",
    env: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    interpolate: bool = True,
) -> LoadedConfig:
    """Like :func:`load_config` for data already in memory (``create_app(config_dict)``).

    Issues name ``source`` and have no line. ``plugins_dir`` is relative to ``base_dir``
    (default: the current directory). ``interpolate=False`` leaves ``$`` in strings untouched.
    """
    return _build(
        copy.deepcopy(data),
        SourceMap(source),
        [],
        path=None,
        base_dir=Path.cwd() if base_dir is None else Path(base_dir).expanduser().absolute(),
        env=env,
        overrides=overrides,
        environ=os.environ if environ is None else environ,
        interpolate=interpolate,
    )


def _build(
    data: Any,
    sources: SourceMap,
    issues: list[ConfigIssue],
    *,
    path: Path | None,
    base_dir: Path,
    env: str | None,
    overrides: Mapping[str, Any] | None,
    environ: Mapping[str, str],
    interpolate: bool,
) -> LoadedConfig:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        line = 1 if path is not None else None
        message = f"the config must be a mapping of sections (server, auth, ...), got {_kind(data)}"
        raise ConfigError([ConfigIssue(sources.default_file, line, "", message)])
    data = dict(data)
    overlays = _overlays(data.pop("environments", None), sources, issues)

    chosen = env or environ.get(ENV_VARIABLE) or None
    if chosen is not None and chosen not in overlays:
        issues.append(_unknown_environment(chosen, not env, overlays, sources))
    elif chosen is not None:
        data = merge_layer(data, overlays[chosen], sources, _overlay_locations(chosen, sources))
    for name, overlay in overlays.items():
        if name != chosen:  # the chosen overlay is checked in full by validation below
            issues.extend(
                sources.issue(("environments", name, *where), message)
                for where, message in unknown_keys(overlay, Config)
            )

    problems: list[tuple[KeyPath, str]] = []
    if interpolate:
        data, problems = interpolate_tree(data, environ)

    if overrides:
        cli = {where: Location(OVERRIDES_SOURCE, None) for where in paths_under(overrides)}
        data = merge_layer(data, overrides, sources, cli)

    unresolved: list[KeyPath] = []
    for where, message in problems:
        # A value the overrides replaced (e.g. `port: ${PORT}` and --port 9000) is not used.
        if sources.locate(where).file != OVERRIDES_SOURCE:
            issues.append(sources.issue(where, message))
            unresolved.append(where)

    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        # A value whose ${VAR} failed is already reported; its type error would only repeat it.
        issues.extend(issues_from_validation_error(error, Config, sources, skip=unresolved))

    plugins_dir = None
    if config is not None and config.plugins_dir is not None:
        plugins_dir = _resolve_dir(config.plugins_dir, base_dir)
        if "plugins_dir" in data and not plugins_dir.is_dir():
            message = f"plugins_dir '{plugins_dir}' is not a directory"
            issues.append(sources.issue(("plugins_dir",), message))
    if issues or config is None:
        partial = _partial(data, sources, path, chosen, base_dir)
        raise ConfigError(issues, partial=partial)
    if plugins_dir is not None:
        config = config.model_copy(update={"plugins_dir": str(plugins_dir)})
    return LoadedConfig(
        config, path, chosen, plugins_dir, sources.default_file, sources, base_dir=base_dir
    )


_PLUGIN_KEYS = tuple(slot.name for slot in SLOTS)


def _partial(
    data: Mapping[str, Any], sources: SourceMap, path: Path | None, env: str | None, base_dir: Path
) -> LoadedConfig | None:
    """The plugin slots of an invalid config that are valid on their own (defaults elsewhere)."""
    valid: dict[str, Any] = {}
    for key in (*_PLUGIN_KEYS, "plugins_dir"):
        if key in data:
            try:
                Config.model_validate({key: data[key]})
            except (ValidationError, TypeError, ValueError):
                continue
            valid[key] = data[key]
    try:
        config = Config.model_validate(valid)
    except ValidationError:  # pragma: no cover - each part validated on its own
        return None
    plugins_dir = None
    if config.plugins_dir is not None:
        plugins_dir = _resolve_dir(config.plugins_dir, base_dir)
        if not plugins_dir.is_dir():
            plugins_dir = None
    return LoadedConfig(
        config, path, env, plugins_dir, sources.default_file, sources, base_dir=base_dir
    )


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def _resolve_dir(directory: str, base_dir: Path) -> Path:
    candidate = Path(directory).expanduser()
    return (candidate if candidate.is_absolute() else base_dir / candidate).resolve()


def _overlays(
    raw: object, sources: SourceMap, issues: list[ConfigIssue]
) -> dict[str, Mapping[str, Any]]:
    """The ``environments`` section as name -> overlay; malformed entries become issues."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        message = f"must be a mapping of environment names to overlays, got {_kind(raw)}"
        issues.append(sources.issue(("environments",), message))
        return {}
    overlays: dict[str, Mapping[str, Any]] = {}
    for name, overlay in raw.items():
        if overlay is not None and not isinstance(overlay, Mapping):
            message = f"an environment overlay must be a mapping, got {_kind(overlay)}"
            issues.append(sources.issue(("environments", name), message))
            continue
        overlays[str(name)] = overlay or {}
    return overlays


def _overlay_locations(name: str, sources: SourceMap) -> dict[KeyPath, Location]:
    """The overlay's own locations, re-rooted at the config's root."""
    prefix = normal_path(("environments", name))
    return {
        where[len(prefix) :]: location
        for where, location in sources.within(prefix).items()
        if len(where) > len(prefix)
    }


def _unknown_environment(
    name: str, from_environ: bool, overlays: Mapping[str, Any], sources: SourceMap
) -> ConfigIssue:
    chosen_by = f" (from {ENV_VARIABLE})" if from_environ else ""
    if not overlays:
        message = f"unknown environment '{name}'{chosen_by}: the config defines no environments"
        return sources.issue(("environments",), message)
    defined = sorted(overlays)
    close = [known for known in defined if known.startswith(name)]
    close = close or difflib.get_close_matches(name, defined, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    message = f"unknown environment '{name}'{chosen_by}{hint} (defined: {', '.join(defined)})"
    return sources.issue(("environments",), message)
