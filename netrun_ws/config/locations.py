"""Where each config value came from: key paths mapped to a file and a 1-based line."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from netrun_ws.config.errors import ConfigIssue

KeyPath = tuple[object, ...]
"""A path into the config data: mapping keys (usually str) and list indices (int)."""


@dataclass(frozen=True)
class Location:
    """A file (or a pseudo-source such as ``<overrides>``) and a line in it, if known."""

    file: str
    line: int | None


def format_key_path(path: Iterable[object]) -> str:
    """``("metrics", 0, "plugin")`` -> ``"metrics.0.plugin"``."""
    return ".".join(str(part) for part in path)


def parse_key_path(key_path: str) -> KeyPath:
    """``"metrics.0.plugin"`` -> ``("metrics", 0, "plugin")``; ``""`` is the root."""
    if not key_path:
        return ()
    return tuple(int(part) if part.isdigit() else part for part in key_path.split("."))


def paths_under(data: object, prefix: KeyPath = ()) -> Iterable[KeyPath]:
    """Every key path inside ``data`` (mapping keys and list indices), depth first."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield (*prefix, key)
            yield from paths_under(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield (*prefix, index)
            yield from paths_under(value, (*prefix, index))


def normal_path(path: KeyPath) -> KeyPath:
    """``path`` with every part as a string, the form paths are compared in.

    A digit-only mapping key and a list index name the same place in a dotted key path.
    """
    return tuple(str(part) for part in path)


class SourceMap:
    """Key paths of the merged config mapped to the place each was written.

    A path with no entry of its own (a default, or a missing key) is located at its nearest
    ancestor that has one, else in ``default_file`` with no line.
    """

    def __init__(self, default_file: str, locations: Mapping[KeyPath, Location] | None = None):
        self.default_file = default_file
        self._locations: dict[KeyPath, Location] = {}
        for path, location in (locations or {}).items():
            self._locations[normal_path(path)] = location

    def locate(self, path: KeyPath) -> Location:
        """The location of ``path`` or of its nearest located ancestor."""
        normal = normal_path(path)
        for end in range(len(normal), 0, -1):
            found = self._locations.get(normal[:end])
            if found is not None:
                return found
        return Location(self.default_file, None)

    def has(self, path: KeyPath) -> bool:
        """True if ``path`` itself (not an ancestor) has a recorded location."""
        return normal_path(path) in self._locations

    def within(self, prefix: KeyPath) -> dict[KeyPath, Location]:
        """Every recorded location at or below ``prefix``."""
        normal = normal_path(prefix)
        return {
            path: location
            for path, location in self._locations.items()
            if path[: len(normal)] == normal
        }

    def set(self, path: KeyPath, location: Location) -> None:
        self._locations[normal_path(path)] = location

    def replace_subtree(self, prefix: KeyPath, locations: Mapping[KeyPath, Location]) -> None:
        """Forget everything at or below ``prefix`` and record ``locations`` (full paths)."""
        for path in self.within(prefix):
            del self._locations[path]
        for path, location in locations.items():
            self._locations[normal_path(path)] = location

    def issue(self, path: KeyPath, message: str) -> ConfigIssue:
        """A :class:`ConfigIssue` for ``path``, located where that value was written."""
        location = self.locate(path)
        return ConfigIssue(location.file, location.line, format_key_path(path), message)
