"""Generate docs/configuration.md from the config models and the built-in plugins' ``Options``.

Regenerate the doc after changing any model, field description or built-in plugin::

    python -m netrun_ws.config.reference > docs/configuration.md

Tables come from the pydantic models (type, constraints, default, ``Field`` description), so they
cannot drift from the code; the prose around them explains what no single field can: where the
file is read from, ``${VAR}``, environments, flag overrides, error reports and secret masking.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
import tempfile
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from netrun_ws.config.errors import ConfigError
from netrun_ws.config.loader import DEFAULT_CONFIG_PATH, ENV_VARIABLE, OVERRIDES_SOURCE, load_config
from netrun_ws.config.models import SLOT_KEYS, ConfigFile, LimitsConfig, ServerConfig, SlotConfig
from netrun_ws.config.secrets import MASK, SECRET_WORDS
from netrun_ws.config.slot_table import SLOTS

REGENERATE_COMMAND = "python -m netrun_ws.config.reference > docs/configuration.md"

TOP_LEVEL_HEADING = "Top-level keys"
SLOTS_HEADING = "Plugin slots"
SECTION_MODELS: dict[str, type[BaseModel]] = {"server": ServerConfig, "limits": LimitsConfig}
"""Top-level keys whose value is a mapping documented in a section of its own."""

_PLAIN_YAML = re.compile(r"[A-Za-z0-9_./:+-]+")
_SLOT_NAME_PREFIX = re.compile(r"^\w+: [\w.-]+ - ")
_SPHINX_ROLE = re.compile(r":[a-z]+:`([^`]+)`")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")  # what Markdown would take for an HTML tag

ENVIRONMENT_EXAMPLE = """\
store: {plugin: memory, connection_ttl: 600}
heartbeat: {plugin: ping, interval: 30, timeout: 90}
environments:
  production:
    store: {plugin: redis, url: "${REDIS_URL}"}   # new plugin: connection_ttl is not inherited
    heartbeat: {interval: 15}                       # same plugin: timeout 90 is kept
"""
"""The overlay example of the doc (tests check it behaves as the doc says)."""

ERROR_EXAMPLE = """\
server:
  prot: 8000
  log_level: loud
limits:
  max_connections: 0
auth: {plugin: jwt, secret: "${JWT_SECRET}"}
"""
"""A config with several mistakes; the doc shows the loader's real report for it."""


def plugin_heading(slot: str, name: str) -> str:
    """The heading of a built-in plugin's section, e.g. ``auth: jwt``."""
    return f"{slot}: {name}"


def anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.lower())
    return text.replace(" ", "-")


def builtin_options() -> dict[str, dict[str, tuple[str, type[BaseModel] | None]]]:
    """slot -> plugin name -> (module path, its module-level ``Options`` model or None)."""
    from netrun_ws.plugins.loading import BUILTINS

    found: dict[str, dict[str, tuple[str, type[BaseModel] | None]]] = {}
    for slot, plugins in BUILTINS.items():
        for name, module_path in plugins.items():
            model = getattr(importlib.import_module(module_path), "Options", None)
            is_model = isinstance(model, type) and issubclass(model, BaseModel)
            found.setdefault(slot, {})[name] = (module_path, model if is_model else None)
    return found


# --------------------------------------------------------------------------- cells


def _escape(text: str) -> str:
    """Make text safe in a table cell: no column breaks, no accidental HTML outside code spans."""
    parts = text.split("`")
    for index, part in enumerate(parts):
        if index % 2 == 0:  # outside a code span
            part = _TAG_START.sub("&lt;", part)
        parts[index] = part.replace("|", "\\|")
    return "`".join(parts).replace("\n", " ")


def _code(text: str) -> str:
    return f"`{text}`"


def yaml_value(value: object) -> str:
    """A default as a YAML author would write it (flow style), e.g. ``[log]`` or ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        plain = _PLAIN_YAML.fullmatch(value) is not None and yaml.safe_load(value) == value
        return value if plain else json.dumps(value)
    if isinstance(value, SlotConfig):
        return value.plugin if not value.options else yaml_value(value.model_dump())
    if isinstance(value, BaseModel):
        return yaml_value(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        items = ", ".join(f"{yaml_value(key)}: {yaml_value(item)}" for key, item in value.items())
        return "{" + items + "}"
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ", ".join(yaml_value(item) for item in value) + "]"
    return json.dumps(str(value))


# --------------------------------------------------------------------------- types


def type_text(annotation: Any) -> str:
    """A field's type in a config author's words: ``integer``, ``list of string``, ``null``..."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(type_text(arg) for arg in args)
    if origin is Literal:
        return " or ".join(_code(yaml_value(arg)) for arg in args)
    if origin in (list, tuple, set, frozenset):
        return f"list of {type_text(args[0])}" if args else "list"
    if origin in (dict, Mapping):
        return f"mapping of {type_text(args[0])} to {type_text(args[1])}" if args else "mapping"
    simple = {
        type(None): "null",
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        SecretStr: "string (secret)",
        Path: "path",
        SlotConfig: "plugin slot",
    }
    if annotation is Any:
        return "any"
    if annotation in simple:
        return simple[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return str(annotation)


def constraint_texts(field: FieldInfo) -> list[str]:
    """The bounds pydantic enforces on a field, e.g. ``> 0``, ``at least 1 item``."""
    found: list[str] = []
    is_text = field.annotation in (str, SecretStr)
    for rule in field.metadata:
        for attribute, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(rule, attribute, None)
            if bound is not None:
                found.append(f"{symbol} {bound}")
        least = getattr(rule, "min_length", None)
        most = getattr(rule, "max_length", None)
        unit = "character" if is_text else "item"
        if least is not None and is_text and least == 1:
            found.append("not empty")
        elif least is not None:
            found.append(f"at least {least} {unit}{'s' if least != 1 else ''}")
        if most is not None:
            found.append(f"at most {most} {unit}{'s' if most != 1 else ''}")
        pattern = getattr(rule, "pattern", None)
        if pattern is not None:
            found.append(f"matching {_code(str(pattern))}")
    return found


def _field_type(field: FieldInfo) -> str:
    return ", ".join([type_text(field.annotation), *constraint_texts(field)])


def _field_default(name: str, field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if name in SECTION_MODELS:
        return f"see [{name}](#{anchor(name)})"
    return _code(yaml_value(field.get_default(call_default_factory=True)))


def options_table(model: type[BaseModel]) -> list[str]:
    """One row per field of ``model``: key, type and constraints, default, description."""
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        key = field.alias or name
        cells = (
            _code(key),
            _field_type(field),
            _field_default(name, field),
            field.description or "",
        )
        rows.append("| " + " | ".join(_escape(cell) for cell in cells) + " |")
    return rows


# --------------------------------------------------------------------------- prose


def _example_errors() -> str:
    """Real loader output for a config with several mistakes, so the doc shows true messages."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / DEFAULT_CONFIG_PATH
        path.write_text(ERROR_EXAMPLE, encoding="utf-8")
        try:
            load_config(path, environ={})
        except ConfigError as error:
            report = str(error).replace(str(path), DEFAULT_CONFIG_PATH)
        else:  # pragma: no cover - only if the models start accepting this config
            raise RuntimeError("the example config for the error report is valid")
    return "\n".join(["```yaml", ERROR_EXAMPLE.rstrip("\n"), "```", "", "```", report, "```"])


def _preamble() -> list[str]:
    from netrun_ws.cli import EXIT_CONFIG

    secret_words = ", ".join(_code(word) for word in sorted(SECRET_WORDS))
    slots = ", ".join(_code(key) for key in sorted(SLOT_KEYS))
    return f"""\
# Configuration reference

<!-- Generated from the config models by `{REGENERATE_COMMAND}`.
     Do not edit by hand: change the models' Field descriptions or the generator instead. -->

netrun-ws is configured by one YAML file. Every section is optional: an empty file (or an empty
section) means the defaults listed below. The tables are generated from the pydantic models
that validate the file, so they list every accepted key.

## The config file

`netrun-ws run`, `netrun-ws check` and `netrun-ws token` read `./{DEFAULT_CONFIG_PATH}` from the
current directory; `--config PATH` (or `-c PATH`) reads another file. The file is UTF-8 YAML with
a single document, read with YAML's safe loader (no Python tags). A key written twice in one
mapping is an error, since YAML would otherwise keep the last one silently. Relative paths
(`plugins_dir`, the jwt plugin's `public_key_file`) are relative to the file's own directory,
not the current one. Numbers must be finite: `.inf`, `.nan` and `1e400` are refused wherever a
number is expected, in the built-in plugins' options too.

In a program, `create_app("path/to/{DEFAULT_CONFIG_PATH}")` or `load_config(path, env=...)` read
a file the same way; `create_app({{...}})` and `load_config_from_dict({{...}})` take the same
structure as a dict (issues then name `<dict>` and have no line numbers).

The file is processed in this order:

1. the YAML is parsed, remembering the line of every key;
2. the environment overlay, if one is chosen, is merged over the rest of the file;
3. `${{VAR}}` references in values are substituted;
4. command-line flags (`--host`, `--port`, `--log-level`) are merged over the result;
5. the result is validated against the models below;
6. when the app is built (`netrun-ws run`, `netrun-ws check`, `create_app`), each plugin is
   found and its options are validated against that plugin's own `Options` model.

## Editor support: the JSON Schema

`netrun-ws schema` prints the JSON Schema (draft 2020-12) of this file: every key below, and the
options of every plugin it finds (the built-ins, the entry points installed, the files in the
`plugins_dir` of `--config`), each slot a choice on its `plugin` key. `${{VAR}}` is accepted
wherever YAML could hold a string. The repository ships it as `netrun_ws.schema.json` beside the
default config, whose first line points editors at it:

```
# yaml-language-server: $schema=netrun_ws.schema.json
```

VS Code (with Red Hat's YAML extension) and other editors built on yaml-language-server then
complete and check keys and plugin options as you type; in JetBrains IDEs map the file under
Settings > Languages & Frameworks > Schemas and DTDs > JSON Schema Mappings. For your own
project, write the schema next to your config and put the same comment at its top:

```sh
netrun-ws schema --config netrun_ws.yaml > netrun_ws.schema.json
```

`--no-entry-points` leaves out the plugins installed as entry points, for a schema file kept in
a repository that should not depend on what happens to be installed (the repository's own file
is made this way, and a test keeps it fresh). The schema checks names, types and bounds; what it
cannot know (whether a variable is set, a module path imports, a plugin's own validators) is
`netrun-ws check`'s job.

## Environment variables: `${{VAR}}`

Any string value may refer to environment variables:

| written | becomes |
|---|---|
| `${{VAR}}` | the value of `VAR`; an error if `VAR` is not set |
| `${{VAR:-default}}` | the value of `VAR`, or `default` when `VAR` is unset or empty |
| `$$` | a literal `$` |

The default is literal text up to the first `}}` (references do not nest). A `$` followed by
anything else is kept as it is; an unterminated `${{` or a malformed name such as `${{1X}}` is an
error. Only values are substituted, never keys, and the result is always a string, which is then
converted to the field's type: `port: ${{PORT:-8000}}` gives the integer 8000. Inside a flow
mapping or list (`{{...}}`, `[...]`), quote the value:
`auth: {{plugin: jwt, secret: "${{JWT_SECRET}}"}}`.

Substitution happens after the environment overlay is applied, so a variable used only in an
environment that is not chosen never needs to be set; a value replaced by a command-line flag
needs no variable either.

## Environments

`environments:` holds named overlays. `netrun-ws run --env NAME` (or `-e NAME`) applies the
overlay `NAME`; without `--env`, the `{ENV_VARIABLE}` environment variable chooses one; with
neither, the file is used as written. Choosing a name the file does not define is an error that
lists the defined names.

The overlay is deep-merged over the rest of the file:

- mappings (`server`, `limits`, a slot's options) merge key by key;
- lists (`metrics`, `plugins`, `allowed_origins`, ...), scalars and `null` replace the value;
- a single-plugin slot whose overlay names a different `plugin` (or is a bare plugin name) is
  **replaced whole**: none of the old plugin's options are kept. An overlay without `plugin`
  changes options of the plugin the slot already has (the default plugin, if the rest of the
  file does not mention the slot). The single-plugin slots are {slots}.

```yaml
{ENVIRONMENT_EXAMPLE.rstrip()}
```

The chosen overlay is validated with the result; the others are checked for unknown keys, so a
typo in an environment is found before the day it is deployed.

## Command-line flags override the file

`netrun-ws run --host HOST --port PORT --log-level LEVEL` override `server.host`, `server.port`
and `server.log_level`. Flags are applied last, after the environment overlay and `${{VAR}}`
substitution; mistakes in them are reported as coming from `{OVERRIDES_SOURCE}`. In a program,
`load_config(..., overrides={{"server": {{"port": 9000}}}})` does the same.

## Mistakes

Every mistake is reported, all at once, one per line, as `file:line key.path: message`, in file
order (a value that is not written in the file, such as a default or a flag, has no line).
Unknown keys are errors everywhere and come with the closest known key as a suggestion; inside
a plugin slot, the keys other than `plugin` are the plugin's options, checked by that plugin.
Unknown plugin names and bad plugin options are reported in the same run as the other mistakes.
`netrun-ws` prints the report on standard error and exits with code {EXIT_CONFIG}. Only an
unreadable file, a YAML syntax error or a document that is not a mapping stop early, with that
one message.

For example, with no `JWT_SECRET` in the environment:

{_example_errors()}

`netrun-ws check` validates the config and every plugin's options without serving.

## Secrets

Put secrets in the environment and refer to them with `${{VAR}}` rather than writing them in the
file. When netrun-ws prints a config (`netrun-ws check`) or an error, it hides them:

- a value under a key named like a secret is shown as `{MASK}`: a key named, in any case, as
  one of the secret words, or ending in `_` plus one of them (`jwt_secret`, `redisPassword`).
  The secret words are {secret_words};
- the password in any URL (`redis://:PASSWORD@host:6379/0`) is shown as `{MASK}`, whatever its
  key;
- validation errors never echo a value under a secret-looking key;
- fields typed `string (secret)` below keep their value out of logs and `repr()`.

## {TOP_LEVEL_HEADING}
""".splitlines()


def _spoken_list(names: Sequence[str]) -> str:
    """``a``, ``b`` and ``c`` as code spans."""
    spans = [_code(name) for name in names]
    return " and ".join(filter(None, [", ".join(spans[:-1]), *spans[-1:]]))


def _slot_kinds() -> str:
    """What each slot holds, in one paragraph made from the slot table."""
    single = [slot.name for slot in SLOTS if not slot.many]
    many = [slot.name for slot in SLOTS if slot.many]
    text = (
        f"{_spoken_list(single)} each name one plugin; {_spoken_list(many)} are lists of them. "
        "A slot is written in one of these forms:"
    )
    return textwrap.fill(text, width=100, break_on_hyphens=False)


def _null_example() -> str:
    """The example line, newline included, of the slots that null disables ("" if none does)."""
    nullable = [slot.name for slot in SLOTS if slot.nullable]
    if not nullable:
        return ""
    names = _spoken_list(nullable).replace("`", "")
    return f"{nullable[0]}: null".ljust(50) + f"# {names} only: disabled\n"


def _slots_prose() -> list[str]:
    from netrun_ws.plugins.loading import ENTRY_POINT_GROUP

    return f"""\
## {SLOTS_HEADING}

{_slot_kinds()}

```yaml
auth: anonymous                                   # a bare name: the plugin with default options
auth: {{plugin: jwt, secret: "${{JWT_SECRET}}"}}     # the plugin's options beside `plugin`
auth: {{plugin: jwt, options: {{secret: "${{JWT_SECRET}}"}}}}   # or under `options:`
{_null_example()}metrics: [log, {{plugin: prometheus, path: /metrics}}]
metrics: log                                      # one entry may be written without the list
metrics: []                                       # or null: none
```

A plugin name is looked up in this order: the slot's built-in plugins (below), the
`{ENTRY_POINT_GROUP}` entry point group of installed packages, a file `NAME.py` or package
`NAME/` in `plugins_dir`, then a dotted module path (`mycompany.ws_auth`). App plugins
(`plugins:`) are found the same way, minus the built-ins. Each plugin validates its options with
its own model; for the built-ins, an unknown option is an error.

| key | type | default | description |
|---|---|---|---|
""".splitlines()


def _plugin_intro(module_path: str) -> list[str]:
    doc = inspect.getdoc(importlib.import_module(module_path)) or ""
    doc = _SPHINX_ROLE.sub(r"`\1`", _SLOT_NAME_PREFIX.sub("", doc))
    doc = doc[:1].upper() + doc[1:]
    return [f"Module `{module_path}`.", "", *([doc, ""] if doc else [])]


def _builtin_sections() -> list[str]:
    lines = [
        "## Built-in plugins",
        "",
        "Each table lists the options of one built-in plugin, written beside `plugin` in its",
        "slot (or under `options:`).",
    ]
    for slot, plugins in builtin_options().items():
        for name, (module_path, model) in plugins.items():
            lines += ["", f"### {plugin_heading(slot, name)}", "", *_plugin_intro(module_path)]
            if model is None or not model.model_fields:
                lines.append("This plugin has no options.")
            else:
                lines += options_table(model)
    return lines


def _top_level_rows() -> list[str]:
    table = options_table(ConfigFile)
    builtins = builtin_options()
    rows = table[:2]
    for row in table[2:]:
        key = row.split("`")[1]
        names = builtins.get(key, {})
        if names:
            listed = ", ".join(f"[`{n}`](#{anchor(plugin_heading(key, n))})" for n in names)
            row = row[: -len(" |")] + f" Built-in: {listed}. |"
        rows.append(row)
    return rows


def render_reference() -> str:
    """The complete docs/configuration.md, generated from the models and built-in plugins."""
    lines = _preamble()
    lines += ["", *_top_level_rows()]
    for key, model in SECTION_MODELS.items():
        summary = _escape(inspect.getdoc(model) or "")
        lines += ["", f"## {key}", "", summary, "", *options_table(model)]
    lines += ["", *_slots_prose()]
    lines += options_table(SlotConfig)[2:]
    lines += ["", *_builtin_sections()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # Bytes, so the file is UTF-8 with \n line ends whatever the console's encoding is.
    sys.stdout.buffer.write(render_reference().encode("utf-8"))
