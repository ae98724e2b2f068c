"""Which ``on_message`` implementations a model reaches (netrun_ws.plugins.routing), as pure
logic over hand-made plan steps: annotations, ``handles(...)`` and the one-line errors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Optional

import pytest
from pydantic import BaseModel

from netrun_ws import handles
from netrun_ws.plugins.hooks import _Step
from netrun_ws.plugins.routing import MessageRoutes, RouteError


class Base(BaseModel):
    pass


class Say(Base):
    type: Literal["say"]


class Shout(Base):
    type: Literal["shout"]


class Wave(BaseModel):
    type: Literal["wave"]


class Stray(BaseModel):
    type: Literal["stray"]


REGISTERED = {"say": Say, "shout": Shout, "wave": Wave}


def routes(*functions: Callable[..., Any], registered: Mapping[str, Any] = REGISTERED) -> Any:
    plan = tuple(
        _Step(plugin=f"p{i}", function=f, pick=lambda args: args, is_async=False)
        for i, f in enumerate(functions)
    )
    table = MessageRoutes(plan, registered)
    return {model: [step.plugin for step in table.plan_for(model)] for model in (Say, Shout, Wave)}


def typed(annotation: Any) -> Callable[..., Any]:
    def on_message(message: Any) -> None:
        return None

    on_message.__annotations__["message"] = annotation
    return on_message


@pytest.mark.parametrize(
    ("annotation", "say", "shout", "wave"),
    [
        (Say, True, False, False),
        (Say | Shout, True, True, False),
        (Optional[Wave], False, False, True),  # noqa: UP045 - the typing spelling is the case
        (Annotated[Shout, "meta"], False, True, False),
        (Base, True, True, False),  # a base class: every registered subclass
        (Any, True, True, True),
        (BaseModel, True, True, True),
        (object, True, True, True),
        (dict[str, Any], True, True, True),
        (Mapping[str, Any], True, True, True),
        (Say | Any, True, True, True),  # a union with a catch-all member is a catch-all
    ],
)
def test_an_annotation_routes_its_models_or_everything(
    annotation: Any, say: bool, shout: bool, wave: bool
) -> None:
    got = routes(typed(annotation))
    assert got == {Say: ["p0"] * say, Shout: ["p0"] * shout, Wave: ["p0"] * wave}


def test_no_message_parameter_or_no_annotation_is_a_catch_all() -> None:
    def counts() -> None:
        return None

    def untyped(message):  # type: ignore[no-untyped-def]
        return None

    assert routes(counts, untyped) == {model: ["p0", "p1"] for model in (Say, Shout, Wave)}


def test_string_annotations_resolve_in_the_function_module() -> None:
    def on_message(message: "Say | Wave") -> None:  # noqa: UP037 - a string on purpose
        return None

    assert routes(on_message) == {Say: ["p0"], Shout: [], Wave: ["p0"]}


def test_an_unresolvable_annotation_is_a_catch_all_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def on_message(message: "Imported") -> None:  # type: ignore[name-defined]  # noqa: F821, UP037
        return None

    with caplog.at_level(logging.WARNING, "netrun_ws.hooks"):
        assert routes(on_message) == {model: ["p0"] for model in (Say, Shout, Wave)}
    assert "plugin 'p0': on_message" in caplog.text
    assert "'Imported' of 'message' cannot be resolved" in caplog.text


def test_handles_wins_over_the_annotation_and_takes_names_or_models() -> None:
    @handles("shout", Wave)
    def on_message(message: Say) -> None:
        return None

    assert routes(on_message) == {Say: [], Shout: ["p0"], Wave: ["p0"]}


def test_order_follows_the_plan_and_catch_alls_stay_in_place() -> None:
    got = routes(typed(Shout), typed(Any), typed(Say | Shout))
    assert got == {Say: ["p1", "p2"], Shout: ["p0", "p1", "p2"], Wave: ["p1"]}


def test_optional_names_skip_types_nobody_registered() -> None:
    @handles("say", "missing", optional=True)
    def on_message() -> None:
        return None

    assert routes(on_message)[Say] == ["p0"]
    assert routes(on_message, registered={"wave": Wave}) == {Say: [], Shout: [], Wave: []}


@pytest.mark.parametrize(
    ("function", "cause"),
    [
        (typed(Stray), "Stray is not a registered message type"),
        (typed(Say | Stray), "Stray is not a registered message type"),
        (typed(int), "annotation <class 'int'> of 'message' is not a message model"),
        (handles("stray")(typed(Any)), "handles 'stray', not a registered message type"),
        (handles(Stray)(typed(Any)), "handles 'Stray', not a registered message type"),
        (handles(42)(typed(Any)), "handles(42): not a type name or model"),  # type: ignore[arg-type]
    ],
)
def test_a_bad_declaration_is_a_route_error_naming_plugin_and_function(
    function: Callable[..., Any], cause: str
) -> None:
    with pytest.raises(RouteError) as raised:
        routes(function)
    assert raised.value.plugin == "p0"
    assert raised.value.cause.startswith("on_message typed.<locals>.on_message: ")
    assert raised.value.cause.endswith(cause)
    assert "\n" not in raised.value.cause


def test_handles_needs_a_type() -> None:
    with pytest.raises(TypeError):
        handles()
