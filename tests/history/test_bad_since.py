"""Fuzzed `since` values over a real server: each is refused with 400 and
`{"error": "invalid since: <why>"}` or accepted (when it happens to be well formed); the server
never fails, and an open bystander keeps being answered."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from netrun_ws import create_app
from tests.history.helpers import chat_config
from tests.support.server import serve

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_POSITION = st.fixed_dictionaries(
    {"offset": st.integers(min_value=-5, max_value=2**60) | st.booleans(), "epoch": _JSON}
)
_CHANNEL = st.sampled_from(["room:", "user:", "lobby", ""]).flatmap(
    lambda prefix: st.text(max_size=10).map(lambda rest: prefix + rest)
)
SINCE = st.one_of(
    st.text(max_size=60),
    _JSON.map(json.dumps),
    st.dictionaries(_CHANNEL, _POSITION | _JSON, max_size=4).map(json.dumps),
)


async def check(values: list[str]) -> list[int]:
    outcomes: list[int] = []
    async with serve(create_app(chat_config(max_since_channels=3))) as addr:
        async with connect(f"ws://{addr}/ws?user_id=bystander") as bystander:
            await bystander.recv()
            for since in values:
                quoted = urllib.parse.quote(since, errors="surrogatepass")
                url = f"ws://{addr}/ws?user_id=ann&session_id=fuzz-session&since={quoted}"
                try:
                    async with connect(url) as client:
                        welcome: dict[str, Any] = json.loads(await client.recv())
                        assert welcome["type"] == "connect"
                        outcomes.append(101)
                except InvalidStatus as refused:
                    assert refused.response.status_code == 400
                    body = json.loads(refused.response.body or b"")
                    assert set(body) == {"error"}, body
                    assert body["error"].startswith("invalid since: "), body
                    assert len(body["error"]) < 200
                    outcomes.append(400)
                # The bystander still gets an answer: a direct message to itself comes back.
                await bystander.send('{"type": "direct", "to": "bystander", "text": "x"}')
                answer = json.loads(await asyncio.wait_for(bystander.recv(), 5))
                assert answer["type"] == "direct" and answer["text"] == "x"
                assert json.loads(await asyncio.wait_for(bystander.recv(), 5))["type"] == "ack"
    return outcomes


# One example of 60 values: one server for all of them (hypothesis draws, asyncio.run serves).
@settings(max_examples=1, deadline=None, derandomize=True, database=None)
@given(values=st.lists(SINCE, min_size=60, max_size=60, unique=True))
def test_any_since_is_refused_with_400_or_accepted(values: list[str]) -> None:
    well_formed = [
        "{}",
        '{"room:a": {"offset": 3, "epoch": "e"}}',
        '{"user:ann": {"offset": 0, "epoch": "x"}}',
    ]
    outcomes = asyncio.run(check(well_formed + values))
    assert outcomes[:3] == [101, 101, 101] and outcomes.count(400) > 30
