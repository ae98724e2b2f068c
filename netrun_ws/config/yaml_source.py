"""Read a YAML config into plain data plus the line of every key (yaml.SafeLoader semantics)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from netrun_ws.config.errors import ConfigError, ConfigIssue
from netrun_ws.config.locations import KeyPath, Location


@dataclass
class ParsedYaml:
    """The document's data, where each key path was written, and non-fatal mistakes found."""

    data: Any
    locations: dict[KeyPath, Location] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)


def read_config_text(path: Path, display: str) -> str:
    """The file's text, or a ConfigError with one issue saying plainly why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        reason = f"config file not found (looked for {path.absolute()})"
    except IsADirectoryError:
        reason = "is a directory, not a config file"
    except PermissionError:
        reason = "cannot read the config file: permission denied"
    except UnicodeDecodeError as error:
        reason = f"config file is not UTF-8 text (bad byte at offset {error.start})"
    except OSError as error:
        reason = f"cannot read the config file: {error.strerror or error}"
    raise ConfigError([ConfigIssue(display, None, "", reason)])


def parse_yaml(text: str, display: str) -> ParsedYaml:
    """Compose and construct one YAML document; a syntax error is a ConfigError with its line."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as error:
        line = text[: error.position].count("\n") + 1
        message = f"invalid YAML: unacceptable character #x{error.character:04x} ({error.reason})"
        raise ConfigError([ConfigIssue(display, line, "", message)]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return ParsedYaml(data=None)
        issues = _duplicate_key_issues(loader, node, display)
        data = loader.construct_document(node)
        # construct_document flattens `<<` merge keys in place, so this walk sees merged keys.
        locations: dict[KeyPath, Location] = {}
        _record_lines(loader, node, (), display, locations, set())
        return ParsedYaml(data=data, locations=locations, issues=issues)
    except yaml.MarkedYAMLError as error:
        raise ConfigError([_syntax_issue(error, display)]) from None
    except yaml.YAMLError as error:
        raise ConfigError([ConfigIssue(display, None, "", f"invalid YAML: {error}")]) from None
    except RecursionError:
        issue = ConfigIssue(display, None, "", "invalid YAML: structure nested too deeply")
        raise ConfigError([issue]) from None
    finally:
        loader.dispose()


def _syntax_issue(error: yaml.MarkedYAMLError, display: str) -> ConfigIssue:
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark is not None else None
    problem = error.problem or error.context or "syntax error"
    message = f"invalid YAML: {problem}"
    if error.context and error.problem and error.context_mark is not None:
        context = f"{error.context} at line {error.context_mark.line + 1}"
        # PyYAML phrases some problems as the second half of a sentence: "... but found ...".
        if problem.startswith("but "):
            message = f"invalid YAML: {context}, {problem}"
        else:
            message += f" ({context})"
    if line is not None and "${" in _line_text(error, line):
        message += '; quote values holding ${VAR} inside {...} or [...], e.g. "${VAR}"'
    return ConfigIssue(display, line, "", message)


def _line_text(error: yaml.MarkedYAMLError, line: int) -> str:
    mark = error.problem_mark
    buffer = mark.buffer if mark is not None else None
    if not isinstance(buffer, str):
        return ""
    lines = buffer.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _scalar_key(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_object(node, deep=True)
    return None  # a complex key; SafeLoader itself rejects unhashable ones


def _duplicate_key_issues(
    loader: yaml.SafeLoader, root: yaml.Node, display: str
) -> list[ConfigIssue]:
    """Keys written twice in one mapping: YAML keeps the last silently, which hides mistakes."""
    issues: list[ConfigIssue] = []
    seen_nodes: set[int] = set()

    def walk(node: yaml.Node, path: KeyPath) -> None:
        if id(node) in seen_nodes:
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first_line: dict[object, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = _scalar_key(loader, key_node)
                line = key_node.start_mark.line + 1
                if key is not None and key in first_line:
                    where = ".".join(str(part) for part in (*path, key))
                    message = f"duplicate key '{key}' (first given at line {first_line[key]})"
                    issues.append(ConfigIssue(display, line, where, message))
                elif key is not None:
                    first_line[key] = line
                walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    walk(root, ())
    return issues


def _record_lines(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: KeyPath,
    display: str,
    locations: dict[KeyPath, Location],
    active: set[int],
) -> None:
    if id(node) in active:
        raise ConfigError(
            [ConfigIssue(display, node.start_mark.line + 1, "", "a YAML alias refers to itself")]
        )
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = _scalar_key(loader, key_node)
            child = (*path, key)
            locations[child] = Location(display, key_node.start_mark.line + 1)
            _record_lines(loader, value_node, child, display, locations, active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            locations[child] = Location(display, item.start_mark.line + 1)
            _record_lines(loader, item, child, display, locations, active)
    active.discard(id(node))
