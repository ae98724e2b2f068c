"""Dispatch by message type: which ``on_message`` implementations a message's model reaches.

An implementation says what it handles with :func:`handles` (type names or models) or with the
annotation of its ``message`` parameter (a registered model, a base class of registered models, or
a union of them). Anything else it may take (no ``message`` parameter, no annotation, ``Any``,
``object``, ``BaseModel``, a dict) keeps it a catch-all that sees every message. The routing table
(model -> the steps of the ``on_message`` plan it reaches, in plan order) is built once at set-up,
so a message pays one dict lookup for it and never calls a handler of another type.
"""

from __future__ import annotations

import inspect
import logging
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from netrun_ws.plugins.hooks import Plan

__all__ = ["MessageRoutes", "RouteError", "handles"]

logger = logging.getLogger("netrun_ws.hooks")

_F = TypeVar("_F", bound=Callable[..., Any])

#: Where :func:`handles` leaves its mark on a function: (types, optional).
_MARK = "netrun_ws_handles"

#: Annotations that mean "every message" (a catch-all implementation).
_CATCH_ALL: tuple[object, ...] = (Any, object, BaseModel, dict, Mapping)

#: A model set of None: a catch-all step.
Accepted = frozenset[type[BaseModel]] | None


def handles(*message_types: str | type[BaseModel], optional: bool = False) -> Callable[[_F], _F]:
    """Mark an ``on_message`` implementation as handling only these message types (``type``
    values or models), whatever its annotation says. A type that is not registered stops start-up,
    unless ``optional`` (then it is skipped: for a plugin answering a type only when some other
    plugin registers it)."""
    if not message_types:
        raise TypeError("handles() needs at least one message type")

    def mark(function: _F) -> _F:
        setattr(function, _MARK, (message_types, optional))
        return function

    return mark


class RouteError(Exception):
    """An ``on_message`` implementation names a type that is not registered; one line."""

    def __init__(self, plugin: str, function: str, cause: str) -> None:
        super().__init__(f"on_message {function}: {cause}")
        self.plugin = plugin
        self.cause = f"on_message {function}: {cause}"


class MessageRoutes:
    """The ``on_message`` plan per message model, cut from the full plan once."""

    def __init__(self, plan: Plan, registered: Mapping[str, type[BaseModel]]) -> None:
        """``registered``: the registry's ``type`` value -> model mapping."""
        known = tuple(dict.fromkeys(registered.values()))
        self._accepted: tuple[tuple[Accepted, ...], Plan] = (
            tuple(_accepted(step.function, step.plugin, registered) for step in plan),
            plan,
        )
        self._routes: dict[type[BaseModel], Plan] = {model: self._cut(model) for model in known}

    def _cut(self, model: type[BaseModel]) -> Plan:
        accepted, plan = self._accepted
        return tuple(
            step
            for step, models in zip(plan, accepted, strict=True)
            if models is None or any(issubclass(model, base) for base in models)
        )

    def plan_for(self, model: type[BaseModel]) -> Plan:
        """The steps ``model``'s messages reach (a model registered after set-up is cut now)."""
        plan = self._routes.get(model)
        if plan is None:
            plan = self._routes[model] = self._cut(model)
        return plan

    @property
    def table(self) -> dict[type[BaseModel], Plan]:
        """Model -> plan, as routed now (for hot loops that look it up themselves)."""
        return self._routes


def _accepted(
    function: Callable[..., Any], plugin: str, registered: Mapping[str, type[BaseModel]]
) -> Accepted:
    name = getattr(function, "__qualname__", repr(function))
    mark = getattr(function, _MARK, None)
    if mark is not None:
        names, optional = mark
        return _from_names(names, optional, plugin, name, registered)
    try:
        parameter = inspect.signature(function).parameters.get("message")
    except (TypeError, ValueError):  # no signature to read: nothing to route by
        return None
    if parameter is None or parameter.annotation is inspect.Parameter.empty:
        return None
    annotation = parameter.annotation
    for _ in range(2):  # a quoted annotation under `from __future__ import annotations` is twice
        if not isinstance(annotation, str):
            break
        try:
            annotation = _resolve(function, annotation)
        except Exception as exc:  # NameError for a name imported under TYPE_CHECKING, mostly
            logger.warning(
                "plugin %r: on_message %s: annotation %r of 'message' cannot be resolved (%s); "
                "it gets every message type (use @handles(...) to route it)",
                plugin,
                name,
                annotation,
                exc,
            )
            return None
    models = _from_annotation(annotation, tuple(registered.values()))
    if isinstance(models, str):
        raise RouteError(plugin, name, models)
    return models


def _resolve(function: Callable[..., Any], annotation: str) -> object:
    """A string annotation (``from __future__ import annotations``) in its function's module."""
    target = inspect.unwrap(getattr(function, "__func__", function))
    namespace = dict(getattr(target, "__globals__", {}))
    # What typing.get_type_hints does, for this one parameter: the others may not resolve.
    return eval(annotation, namespace)


def _from_annotation(annotation: object, known: tuple[type[BaseModel], ...]) -> Accepted | str:
    """The models an annotation routes, None for a catch-all, or why it cannot route."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _from_annotation(typing.get_args(annotation)[0], known)
    if origin is typing.Union or origin is types.UnionType:
        found: set[type[BaseModel]] = set()
        for member in typing.get_args(annotation):
            if member is type(None):
                continue
            models = _from_annotation(member, known)
            if models is None or isinstance(models, str):
                return models
            found |= models
        return frozenset(found)
    if annotation in _CATCH_ALL or origin in (dict, Mapping) or origin in _CATCH_ALL:
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        models = frozenset(model for model in known if issubclass(model, annotation))
        if not models:
            return f"{annotation.__name__} is not a registered message type"
        return frozenset({annotation})
    return f"annotation {annotation!r} of 'message' is not a message model"


def _from_names(
    names: tuple[str | type[BaseModel], ...],
    optional: bool,
    plugin: str,
    function: str,
    registered: Mapping[str, type[BaseModel]],
) -> frozenset[type[BaseModel]]:
    found: set[type[BaseModel]] = set()
    for item in names:
        if isinstance(item, str):
            model = registered.get(item)
            if model is not None:
                found.add(model)
                continue
        elif isinstance(item, type) and issubclass(item, BaseModel):
            if any(issubclass(model, item) for model in registered.values()):
                found.add(item)
                continue
        else:
            raise RouteError(plugin, function, f"handles({item!r}): not a type name or model")
        if not optional:
            label = item if isinstance(item, str) else item.__name__
            raise RouteError(plugin, function, f"handles {label!r}, not a registered message type")
    return frozenset(found)
