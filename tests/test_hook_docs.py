"""docs/hooks.md documents every hookspec, with its arguments; and documents nothing else."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from netrun_ws import hookspecs

DOC = Path(__file__).resolve().parent.parent / "docs" / "hooks.md"


def documented() -> dict[str, str]:
    """Hook name -> its section of docs/hooks.md (sections are `### name(args)` headings)."""
    text = DOC.read_text()
    sections = re.split(r"^### ", text, flags=re.MULTILINE)[1:]
    return {re.match(r"`?(\w+)", s).group(1): s for s in sections}  # type: ignore[union-attr]


def test_every_hookspec_is_documented_with_its_arguments() -> None:
    docs = documented()
    for name in sorted(hookspecs.all_hook_names()):
        assert name in docs, f"hook {name!r} is not documented in docs/hooks.md"
        section = docs[name]
        for argument in inspect.signature(getattr(hookspecs, name)).parameters:
            assert f"`{argument}`" in section, f"docs/hooks.md: {name} does not describe {argument}"
        for word in ("Returns", "Called"):
            assert word in section, f"docs/hooks.md: {name} section lacks '{word}'"


def test_docs_describe_no_hook_that_does_not_exist() -> None:
    assert set(documented()) <= hookspecs.all_hook_names()
