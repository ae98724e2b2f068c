"""Shared fixtures. Helpers live in tests/support/ so test modules import them explicitly."""

from __future__ import annotations
