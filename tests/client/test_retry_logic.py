"""Pure logic of the client: the retry rules, the backoff schedule, positions, token expiry."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote_plus

import pytest

from netrun_ws.client import Retry, retry_delay, rule_for_close, rule_for_status
from netrun_ws.client.positions import Position, Positions
from netrun_ws.client.retry import attempts_left, policy_from_welcome
from netrun_ws.client.tokens import refresh_delay, token_expiry
from netrun_ws.reconnection import ReconnectionConfig

POLICY = ReconnectionConfig(
    initial_delay=1.0, max_delay=10.0, max_attempts=5, backoff_multiplier=2.0, jitter=True
)


@pytest.mark.parametrize(
    ("code", "retry"),
    [
        (1000, Retry.NEVER),
        (1001, Retry.PROMPT),
        (1012, Retry.PROMPT),
        (1006, Retry.BACKOFF),
        (None, Retry.BACKOFF),  # no close frame at all
        (1011, Retry.BACKOFF),
        (1008, Retry.REAUTH),
        (1002, Retry.NEVER),
        (1007, Retry.NEVER),
        (1009, Retry.NEVER),
        (4000, Retry.NEVER),
        (4042, Retry.NEVER),  # the terminal application range
        (4100, Retry.BACKOFF),
        (4150, Retry.BACKOFF),  # the reconnect application range
        (4500, Retry.BACKOFF),  # an unknown code
    ],
)
def test_close_codes_map_to_the_documented_retry(code: int | None, retry: Retry) -> None:
    assert rule_for_close(code).retry is retry


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (401, Retry.REAUTH),
        (403, Retry.REAUTH),
        (400, Retry.NEVER),
        (404, Retry.NEVER),
        (418, Retry.NEVER),
        (429, Retry.BACKOFF),
        (503, Retry.BACKOFF),
        (502, Retry.BACKOFF),
    ],
)
def test_refused_handshakes_map_to_the_documented_retry(status: int, retry: Retry) -> None:
    assert rule_for_status(status).retry is retry


def test_backoff_grows_by_the_multiplier_within_the_jitter_band_and_is_capped() -> None:
    lowest = [retry_delay(POLICY, n, Retry.BACKOFF, lambda: 0.0) for n in range(1, 7)]
    highest = [retry_delay(POLICY, n, Retry.BACKOFF, lambda: 0.999999) for n in range(1, 7)]
    assert lowest == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert highest == pytest.approx([1.0, 2.0, 4.0, 8.0, 10.0, 10.0], rel=1e-5)


def test_without_jitter_the_delay_is_exact() -> None:
    policy = ReconnectionConfig(initial_delay=0.5, max_delay=3.0, jitter=False)
    delays = [retry_delay(policy, n, Retry.BACKOFF, lambda: 0.7) for n in range(1, 5)]
    assert delays == [0.5, 1.0, 2.0, 3.0]


def test_a_prompt_retry_waits_at_most_half_the_initial_delay_first_then_backs_off() -> None:
    assert retry_delay(POLICY, 1, Retry.PROMPT, lambda: 0.0) == 0.0
    assert retry_delay(POLICY, 1, Retry.PROMPT, lambda: 0.5) == 0.25
    assert retry_delay(POLICY, 2, Retry.PROMPT, lambda: 0.0) == 1.0


def test_max_attempts_bounds_the_attempts_and_zero_means_unlimited() -> None:
    assert [attempts_left(POLICY, n) for n in (1, 5, 6)] == [True, True, False]
    assert attempts_left(ReconnectionConfig(max_attempts=0), 10_000)


def test_the_welcome_policy_is_read_and_a_missing_or_malformed_one_falls_back() -> None:
    fallback = ReconnectionConfig()
    welcome = {
        "reconnect": {
            "strategy": "exponential",
            "initial_delay": 0.2,
            "max_delay": 3,
            "max_attempts": 4,
            "backoff_multiplier": 1.5,
            "jitter": "none",
        }
    }
    assert policy_from_welcome(welcome, fallback) == ReconnectionConfig(0.2, 3.0, 4, 1.5, False)
    assert policy_from_welcome({}, fallback) is fallback
    for bad in (
        {"initial_delay": "1"},
        {"initial_delay": -1},
        {"max_attempts": 1.5},
        {"jitter": "full"},
        {"max_delay": 0.1, "initial_delay": 5},
        {"backoff_multiplier": True},
    ):
        assert policy_from_welcome({"reconnect": bad}, fallback) is fallback, bad
    assert policy_from_welcome({"reconnect": "fast"}, fallback) is fallback


def message(channel: str, offset: int, epoch: str = "e1") -> dict[str, object]:
    return {"type": "said", "pos": {"channel": channel, "offset": offset, "epoch": epoch}}


def test_positions_drop_duplicates_within_an_epoch_and_report_a_new_epoch() -> None:
    positions = Positions()
    assert positions.accept(message("room:a", 3)) == (True, None)
    assert positions.accept(message("room:a", 4)) == (True, None)
    assert positions.accept(message("room:a", 4)) == (False, None)  # a replayed duplicate
    assert positions.accept(message("room:a", 2)) == (False, None)
    assert positions.accept(message("room:b", 1)) == (True, None)  # channels are independent
    assert positions.accept(message("room:a", 1, "e2")) == (True, Position(4, "e1"))
    assert positions.get("room:a") == Position(1, "e2")
    assert positions.accept({"type": "said"}) == (True, None)  # no position: always new
    assert positions.accept({"type": "said", "pos": {"channel": "x", "offset": "1"}}) == (
        True,
        None,
    )


def test_the_since_parameter_lists_every_tracked_channel() -> None:
    positions = Positions()
    assert positions.since_param() is None
    positions.set("user:alice", Position(0, "u"))
    positions.accept(message("room:a", 7))
    assert json.loads(positions.since_param() or "") == {
        "room:a": {"offset": 7, "epoch": "e1"},
        "user:alice": {"offset": 0, "epoch": "u"},
    }
    assert positions.forget_all_but({"room:a": {}}) == ["user:alice"]
    assert list(positions.snapshot()) == ["room:a"]
    assert positions.forget_all_but({}) == ["room:a"]
    assert positions.snapshot() == {}


def test_a_since_over_its_budget_names_the_highest_offsets_and_fits() -> None:

    positions = Positions()
    for k in range(200):
        positions.set(f"room:r{k:03d}", Position(k, "epoch-abc"))
    whole = positions.since_param(max_channels=200)
    assert whole is not None and len(json.loads(whole)) == 200
    assert positions.since_param(len(quote_plus(whole)), 200) == whole  # fits: all of it
    for budget in (len(quote_plus(whole)) - 1, 3000, 120):
        cut = positions.since_param(budget, 200)
        assert cut is not None and len(quote_plus(cut)) <= budget, budget
        named = json.loads(cut)
        offsets = sorted(value["offset"] for value in named.values())
        assert offsets == list(range(200 - len(named), 200)), budget  # the highest ones
        assert list(named) == sorted(named)
    assert positions.since_param(10) is None  # not even one fits
    capped = json.loads(positions.since_param() or "")  # the server's default: 100 channels
    assert sorted(value["offset"] for value in capped.values()) == list(range(100, 200))
    assert len(json.loads(positions.since_param(max_channels=3) or "")) == 3


def jwt_with(claims: object) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{body}.sig"


def test_token_expiry_reads_exp_and_ignores_what_is_not_a_jwt_with_one() -> None:
    assert token_expiry(jwt_with({"sub": "a", "exp": 1764100000})) == 1764100000.0
    assert token_expiry(jwt_with({"sub": "a"})) is None
    assert token_expiry(jwt_with({"exp": "1764100000"})) is None
    assert token_expiry(jwt_with([1, 2])) is None
    assert token_expiry("opaque-token") is None
    assert token_expiry("a.!!!.c") is None


def test_refresh_comes_a_margin_before_expiry_and_halfway_for_short_tokens() -> None:
    assert refresh_delay(expires_at=1000.0, now=0.0, margin=30.0) == 970.0
    assert refresh_delay(expires_at=30.0, now=0.0, margin=30.0) == 15.0  # halfway, not at once
    assert refresh_delay(expires_at=60.0, now=0.0, margin=5.0) == 55.0
    assert refresh_delay(expires_at=10.0, now=20.0, margin=5.0) == 0.0  # already expired


def test_every_channel_fits_in_the_url_or_goes_in_a_since_frame() -> None:
    positions = Positions()
    for k in range(5):
        positions.set(f"room:r{k}", Position(k, "e"))
    whole = positions.since_param(max_channels=200)
    assert whole is not None
    assert positions.fit_in_url(len(quote_plus(whole)), 5)
    assert not positions.fit_in_url(len(quote_plus(whole)) - 1, 5)  # one character short
    assert not positions.fit_in_url(10_000, 4)  # one channel too many
    frame = json.loads(positions.since_frame())
    assert frame == {"type": "since", "channels": json.loads(whole)}
