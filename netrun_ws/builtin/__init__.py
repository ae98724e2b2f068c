"""The built-in plugins: each uses only the public API, as a third-party plugin would.

A config names them (``auth: jwt``); nothing imports them. The import-linter contract in
pyproject.toml (checked by tests/test_public_api.py) keeps them off private modules.
"""

from __future__ import annotations

__all__: list[str] = []
