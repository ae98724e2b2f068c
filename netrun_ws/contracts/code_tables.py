"""The close and error codes of ``netrun_ws/codes.py`` with the comment beside each, for the
generated contracts (the comments are the one place saying what a client should do on each)."""

from __future__ import annotations

import inspect
import re

from netrun_ws import codes

_MEMBER = re.compile(r"^\s+([A-Z][A-Z0-9_]*) = ([^#\n]+?)\s*(?:#\s*(.*))?$", re.MULTILINE)


def _comments(cls: type) -> dict[str, str]:
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # no source shipped (a zipped install): names and values only
        return {}
    return {match[1]: (match[3] or "").strip() for match in _MEMBER.finditer(source)}


def close_codes() -> list[tuple[str, int, str]]:
    """(name, code, what it means) for every ``CloseCode``."""
    notes = _comments(codes.CloseCode)
    return [(code.name, int(code), notes.get(code.name, "")) for code in codes.CloseCode]


def error_codes() -> list[tuple[str, str, str]]:
    """(name, value, when it is sent) for every ``ErrorCode``."""
    notes = _comments(codes.ErrorCode)
    return [
        (name, value, notes.get(name, ""))
        for name, value in vars(codes.ErrorCode).items()
        if name.isupper() and isinstance(value, str)
    ]
