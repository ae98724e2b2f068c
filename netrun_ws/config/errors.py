"""Config mistakes as ``file:line key.path: message`` lines, raised all together in one error."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConfigIssue:
    """One mistake in a config, located by file, 1-based line (if known) and dotted key path."""

    file: str
    line: int | None
    key_path: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.key_path:
            return f"{where} {self.key_path}: {self.message}"
        return f"{where}: {self.message}"


def _sort_key(issue: ConfigIssue) -> tuple[str, bool, int, str]:
    # Issues with a line come first, in file order; located-nowhere ones (defaults, CLI) last.
    return (issue.file, issue.line is None, issue.line or 0, issue.key_path)


class ConfigError(Exception):
    """Every mistake found in a config; ``str(error)`` prints one issue per line.

    Issues are de-duplicated and sorted by file and line so the report reads top to bottom.
    """

    def __init__(self, issues: Iterable[ConfigIssue], *, partial: Any = None) -> None:
        unique = list(dict.fromkeys(issues))
        if not unique:
            raise ValueError("ConfigError needs at least one issue")
        self.issues: list[ConfigIssue] = sorted(unique, key=_sort_key)
        #: A LoadedConfig holding only the plugin slots that were valid, so plugin names and
        #: options can be checked in the same run as the other mistakes (None if none could be).
        self.partial = partial
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)
