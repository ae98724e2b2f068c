"""The `history:` config section: defaults, and a one-line error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from netrun_ws.config import HistoryConfig, load_config
from tests.config.test_config_loader import errors_of, in_tmp  # noqa: F401  (in_tmp: fixture)


def test_history_is_on_for_rooms_and_users_by_default() -> None:
    config = HistoryConfig()
    assert (config.rooms_enabled, config.rooms_size, config.rooms_ttl) == (True, 200, 300.0)
    assert (config.users_enabled, config.users_size, config.users_ttl) == (True, 200, 300.0)
    assert (config.max_replay_messages, config.max_replay_bytes) == (1000, 1048576)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "history:\n  rooms_size: 0\n",
            "netrun_ws.yaml:2 history.rooms_size: input should be greater than 0 (got 0)",
        ),
        (
            "history:\n  users_ttl: forever\n",
            "netrun_ws.yaml:2 history.users_ttl: input should be a valid number, unable to parse "
            "string as a number (got 'forever')",
        ),
        (
            "history:\n  size: 10\n",
            "netrun_ws.yaml:2 history.size: unknown key 'size'; expected one of: rooms_enabled, "
            "rooms_size, rooms_ttl, users_enabled, users_size, users_ttl, max_replay_messages, "
            "max_replay_bytes, max_since_channels",
        ),
    ],
)
def test_a_bad_history_key_is_named_in_one_line(in_tmp: Path, text: str, line: str) -> None:  # noqa: F811
    assert errors_of(text, in_tmp) == [line]


def test_an_empty_history_section_means_defaults(in_tmp: Path) -> None:  # noqa: F811
    (in_tmp / "netrun_ws.yaml").write_text("history:\n", encoding="utf-8")
    assert load_config("netrun_ws.yaml", environ={}).config.history == HistoryConfig()
