"""mask_secrets: what `netrun-ws check` and the logs may print."""

from __future__ import annotations

import copy

import pytest

from netrun_ws.config import is_secret_key, mask_secrets, mask_url


@pytest.mark.parametrize(
    "name",
    [
        "secret",
        "password",
        "passwd",
        "token",
        "api_key",
        "apikey",
        "key",
        "private_key",
        "credentials",
        "SECRET",
        "jwt_secret",
        "client-secret",
        "jwtSecret",
        "redisPassword",
        "access_token",
        "aws_api_key",
    ],
)
def test_secret_looking_keys(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name",
    [
        "token_expiry_seconds",
        "key_prefix",
        "keys",
        "max_tokens",
        "monkey",
        "plugin",
        "url",
        "algorithms",
        "secretary",
        3,
        None,
    ],
)
def test_ordinary_keys(name: object) -> None:
    assert not is_secret_key(name)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:pw@host/0", "redis://:***@host/0"),
        ("redis://user:pw@host:6379", "redis://user:***@host:6379"),
        ("rediss://u:p%40ss@h/1?ssl=true", "rediss://u:***@h/1?ssl=true"),
        ("redis://user@host/0", "redis://user@host/0"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("http://example.com/a@b", "http://example.com/a@b"),
        ("not a url", "not a url"),
    ],
)
def test_url_passwords(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_secrets_returns_a_masked_deep_copy() -> None:
    data = {
        "auth": {"plugin": "jwt", "secret": "s", "jwt_secret": "s2", "token_expiry_seconds": 60},
        "store": {"plugin": "redis", "url": "redis://:pw@h/0", "key_prefix": "nw:"},
        "metrics": [{"plugin": "x", "credentials": {"user": "u", "password": "p"}}],
        "plugins": [{"plugin": "chat", "api_key": None, "tags": ("a", "redis://u:p@h")}],
    }
    original = copy.deepcopy(data)
    masked = mask_secrets(data)
    assert masked == {
        "auth": {"plugin": "jwt", "secret": "***", "jwt_secret": "***", "token_expiry_seconds": 60},
        "store": {"plugin": "redis", "url": "redis://:***@h/0", "key_prefix": "nw:"},
        "metrics": [{"plugin": "x", "credentials": "***"}],
        "plugins": [{"plugin": "chat", "api_key": None, "tags": ("a", "redis://u:***@h")}],
    }
    assert data == original
    assert masked["auth"] is not data["auth"]


def test_mask_secrets_on_scalars() -> None:
    assert mask_secrets("redis://:pw@h") == "redis://:***@h"
    assert mask_secrets(5) == 5
    assert mask_secrets(None) is None
