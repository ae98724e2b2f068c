"""Every plugin slot of ``netrun_ws.yaml``, declared once: :class:`SlotTable`.

A slot is a top-level key that names plugins (``auth: jwt``, ``metrics: [log, prometheus]``).
Everything else about slots is derived from the table: the config model's fields (type, default,
description), the built-in plugins a name is looked up in first, the order plugins are registered
in (the table's order), which keys the environment-overlay merge treats as slots, and the slot
parts of docs/configuration.md. Adding a slot is adding one attribute to :class:`SlotTable`.

This module imports nothing from netrun_ws, so that config/ and plugins/ can both read it.
"""

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["SLOTS", "Many", "One", "OneOrNull", "Slot", "SlotTable", "slot", "table_rows"]

One = TypeVar("One")
"""A slot annotated ``One`` holds exactly one plugin."""
OneOrNull = TypeVar("OneOrNull")
"""A slot annotated ``OneOrNull`` holds one plugin, or null to disable it."""
Many = TypeVar("Many")
"""A slot annotated ``Many`` holds a list of plugins (null or a single entry is accepted too)."""

_KINDS: dict[object, tuple[bool, bool]] = {
    One: (False, False),
    OneOrNull: (False, True),
    Many: (True, False),
}
"""Annotation -> (many, nullable)."""


@dataclass(frozen=True, slots=True)
class Slot:
    """One row of the table, as the rest of netrun_ws reads it."""

    name: str
    description: str
    """The key's description in docs/configuration.md."""
    builtins: Mapping[str, str] = field(default_factory=dict)
    """Built-in plugin name -> module path; looked up before any other source, in this slot only."""
    default: str | tuple[str, ...] | None = None
    """The plugin used when the key is absent: a name, a tuple of names (``many``) or None."""
    many: bool = False
    """A list of plugins rather than one."""
    nullable: bool = False
    """A single-plugin slot that null disables."""
    app: bool = False
    """App plugins: found without built-ins, registered under their own name, in no slot."""

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem is not None:
            raise ValueError(f"slot {self.name!r}: {problem}")

    def _problem(self) -> str | None:
        if not self.name.isidentifier():
            return "the name must be an identifier"
        if self.app and (not self.many or self.builtins):
            return "app plugins are a list (Many) with no built-ins"
        if self.many and self.nullable:
            return "null empties a list slot; only a single-plugin slot is nullable"
        if self.many:
            defaults = self.default
            if not isinstance(defaults, tuple):
                return "a list slot's default is a tuple of plugin names"
        elif self.default is None:
            if not self.nullable:
                return "a slot that may not be null needs a default plugin (or annotate OneOrNull)"
            defaults = ()
        elif isinstance(self.default, str):
            defaults = (self.default,)
        else:
            return "a single-plugin slot's default is one plugin name"
        # A default that had to be found elsewhere would depend on what happens to be installed.
        unknown = [name for name in defaults if name not in self.builtins]
        if unknown:
            return f"default {unknown[0]!r} is not one of its built-ins"
        return None

    @property
    def default_plugins(self) -> tuple[str, ...]:
        """The names of the default plugins, whatever the slot's kind (empty when null)."""
        if self.default is None:
            return ()
        return (self.default,) if isinstance(self.default, str) else self.default


@dataclass(frozen=True, slots=True)
class _Declared:
    """What :func:`slot` records; the name and kind come from the attribute it is assigned to."""

    description: str
    builtins: Mapping[str, str]
    default: str | tuple[str, ...] | None
    app: bool


def slot(
    description: str,
    *,
    builtins: Mapping[str, str] | None = None,
    default: str | tuple[str, ...] | None = None,
    app: bool = False,
) -> Any:
    """Declare a slot in :class:`SlotTable` (typed ``Any`` so it fits any of the annotations)."""
    return _Declared(description, dict(builtins or {}), default, app)


class SlotTable(Generic[One, OneOrNull, Many]):
    """The slot table: one attribute per slot, in registration order.

    The annotation says what the slot holds. The config model subclasses this table with its own
    types for ``One``, ``OneOrNull`` and ``Many`` (for the type checker), so ``config.auth`` and
    ``config.metrics`` are typed without the slots being listed a second time.
    """

    auth: One = slot(
        "Who a connection is: 'anonymous' (local development) or 'jwt'.",
        builtins={
            "anonymous": "netrun_ws.builtin.auth_anonymous",
            "jwt": "netrun_ws.builtin.auth_jwt",
        },
        default="anonymous",
    )
    store: One = slot(
        "Where sessions, presence and rooms are kept: 'memory' or 'redis'.",
        builtins={
            "memory": "netrun_ws.builtin.store_memory",
            "redis": "netrun_ws.builtin.store_redis",
        },
        default="memory",
    )
    heartbeat: OneOrNull = slot(
        "Detects dead connections: 'ping'. null disables heartbeats.",
        builtins={"ping": "netrun_ws.builtin.heartbeat_ping"},
        default="ping",
    )
    reconnect: OneOrNull = slot(
        "Reconnection policy sent to clients on connect: 'exponential'. null sends none.",
        builtins={"exponential": "netrun_ws.builtin.reconnect_exponential"},
        default="exponential",
    )
    protocol: One = slot(
        "How frames are parsed and validated into message types: 'json'.",
        builtins={"json": "netrun_ws.builtin.protocol_json"},
        default="json",
    )
    metrics: Many = slot(
        "Metrics sinks, any of 'log', 'json', 'prometheus', 'status' (a live page). "
        "[] (or null) for none.",
        builtins={
            "log": "netrun_ws.builtin.metrics_log",
            "json": "netrun_ws.builtin.metrics_json",
            "prometheus": "netrun_ws.builtin.metrics_prometheus",
            "status": "netrun_ws.builtin.metrics_status",
        },
        default=("log",),
    )
    plugins: Many = slot(
        "App plugins, each a name, module path, or a slot mapping with options. "
        "[] (or null) for none.",
        default=(),
        app=True,
    )


def table_rows(table: type) -> tuple[Slot, ...]:
    """The slots a table class declares (its own attributes, in order) as :class:`Slot` rows."""
    rows = []
    for name, annotation in inspect.get_annotations(table, eval_str=True).items():
        declared = vars(table).get(name)
        kind = _KINDS.get(annotation)
        if kind is None or not isinstance(declared, _Declared):
            hint = f"`{name}: One = slot(...)` (or OneOrNull, Many)"
            raise TypeError(f"slot {name!r}: declare it as {hint}")
        many, nullable = kind
        rows.append(
            Slot(
                name,
                declared.description,
                declared.builtins,
                declared.default,
                many=many,
                nullable=nullable,
                app=declared.app,
            )
        )
    return tuple(rows)


SLOTS: tuple[Slot, ...] = table_rows(SlotTable)
"""Every slot, in registration order."""
