"""netrun_ws.callbacks: a callback gets as many of the offered arguments as it declares."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from netrun_ws.callbacks import accepted_arguments, fit_arguments


def one(a: object) -> object:
    return ("one", a)


def two(a: object, b: object) -> object:
    return ("two", a, b)


def star(*args: object) -> object:
    return ("star", *args)


def optional(a: object, b: object = None, *, key: object = None) -> object:
    return ("optional", a, b, key)


@pytest.mark.parametrize(
    ("callback", "taken"),
    [
        (one, 1),
        (two, 2),
        (star, 2),
        (optional, 2),
        (lambda: None, 0),
        (functools.partial(two, "x"), 1),
        ([].append, 1),
    ],
)
def test_accepted_arguments(callback: Any, taken: int) -> None:
    assert accepted_arguments(callback, 2) == taken


def test_unreadable_signature_gets_everything() -> None:
    class Opaque:
        __signature__ = "not a signature"

        def __call__(self, *args: object) -> None: ...

    assert accepted_arguments(Opaque(), 2) == 2


def test_fit_returns_the_callback_itself_when_it_takes_everything() -> None:
    assert fit_arguments(two, 2) is two
    assert fit_arguments(star, 2) is star
    assert fit_arguments(one, 2)(1, 2) == ("one", 1)
    assert fit_arguments(optional, 2)(1, 2) == ("optional", 1, 2, None)
