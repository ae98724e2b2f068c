"""Summarise py-spy ``--format raw`` output (collapsed stacks) into self and inclusive shares."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


@dataclass(frozen=True)
class Profile:
    samples: int
    self_time: Counter[str]
    inclusive: Counter[str]
    by_package: Counter[str]


def _function(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), "?"
    return f"{match['name']} ({match['file']})", match["file"]


def _package(path: str) -> str:
    parts = path.split("/")
    if parts[0] in ("netrun_ws", "bench"):
        return "/".join(parts[:2]) if parts[0] == "netrun_ws" else "bench"
    return parts[0] or "?"


def summarise(raw: Path) -> Profile:
    """Self samples per innermost function, inclusive samples per function, self per package."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(frame) for frame in stack.split(";")]
        total += count
        innermost, path = frames[-1]
        self_time[innermost] += count
        by_package[_package(path)] += count
        for name in {name for name, _ in frames}:
            inclusive[name] += count
    return Profile(total, self_time, inclusive, by_package)
