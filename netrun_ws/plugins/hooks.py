"""The async hook dispatcher over pluggy's registry: calls hooks by name (``host.hooks``).

pluggy has no async support (a coroutine counts as a firstresult), so pluggy only registers,
orders and validates implementations; this module calls them. Every call goes through one plan per
(hook, argument names): each implementation receives just the arguments it names, picked from the
caller's arguments by a C-level itemgetter; awaitables are awaited; a failure is attributed to the
plugin that raised. A hook name without a spec, or an argument the spec does not have, is an error
when the plan is made (once), not silence. The built-in hooks are called through the typed
:class:`~netrun_ws.plugins.relay.HookRelay`; this by-name API is for hooks plugins add.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import operator
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

__all__ = ["DROP", "HookError", "Hooks", "UnknownHookError"]

logger = logging.getLogger("netrun_ws.hooks")


class _Drop:
    """Sentinel a ``before_send`` implementation returns to not send a message."""

    _instance: _Drop | None = None

    def __new__(cls) -> _Drop:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()


class HookError(Exception):
    """An implementation raised; names the plugin and hook so logs and errors can say who."""

    def __init__(self, plugin: str, hook: str, error: BaseException) -> None:
        super().__init__(
            f"plugin {plugin!r} failed in hook {hook!r}: {type(error).__name__}: {error}"
        )
        self.plugin = plugin
        self.hook = hook
        self.error = error


class UnknownHookError(LookupError):
    """A hook was called by a name no spec has, or with an argument its spec does not take."""


@dataclass(frozen=True, slots=True)
class _Step:
    """One implementation, ready to call with a caller's positional arguments."""

    plugin: str
    function: Callable[..., Any]
    # args (in the caller's order) -> the arguments this implementation takes.
    pick: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    # Decided once: awaiting is skipped for plain functions on the per-message path.
    is_async: bool


Plan = tuple[_Step, ...]


def _picker(wanted: Iterable[str], given: tuple[str, ...]) -> Callable[[tuple[Any, ...]], Any]:
    """args (in ``given`` order) -> the arguments an implementation takes (``wanted``), in C."""
    positions = [given.index(name) for name in wanted]
    start = positions[0] if positions else 0
    if positions == list(range(start, start + len(positions))):  # a run, one argument, or none
        return operator.itemgetter(slice(start, start + len(positions)))
    return operator.itemgetter(*positions)  # two or more, out of order or with gaps


#: Result type -> whether its instances are awaitable, decided once per type (bounded).
_AWAITABLE: dict[type, bool] = {}
_MAX_AWAITABLE_TYPES = 1024


def awaitable(result: Any) -> bool:
    """Whether ``result`` can be awaited (its type has ``__await__``, as ``await`` requires).
    ``hasattr(result, "__await__")`` on a pydantic model, what a plain ``on_message`` returns,
    goes through the model's ``__getattr__`` and an AttributeError: microseconds per reply."""
    kind = type(result)
    known = _AWAITABLE.get(kind)
    if known is None:
        known = getattr(kind, "__await__", None) is not None
        if len(_AWAITABLE) < _MAX_AWAITABLE_TYPES:
            _AWAITABLE[kind] = known
    return known


async def run_plan(
    plan: Plan, hook: str, args: tuple[Any, ...], *, first: bool = False, isolate: bool = False
) -> list[Any]:
    """Call every step of ``plan`` in order and return the non-None results.

    ``first``: stop at the first non-None result. ``isolate``: a failure is logged and the next
    implementation still runs (cleanup hooks); the failures are returned instead of the results.
    Otherwise a failure raises :class:`HookError`.
    """
    results: list[Any] = []
    for step in plan:
        try:
            result = step.function(*step.pick(args))
            # Inline, not a helper: a call per implementation costs more than the test. A plain
            # function's None costs no awaitable check.
            if step.is_async or (
                result is not None
                and _AWAITABLE.get(type(result)) is not False  # a known plain type: no call
                and awaitable(result)
            ):
                result = await result
        except Exception as exc:
            failure = HookError(step.plugin, hook, exc)
            if not isolate:
                raise failure from exc
            logger.error("%s", failure, exc_info=exc)
            results.append(failure)
            continue
        if result is not None and not isolate:
            results.append(result)
            if first:
                break
    return results


async def run_first(plan: Plan, hook: str, args: tuple[Any, ...]) -> Any:
    """``run_plan(plan, hook, args, first=True)``'s first result, or None: the result itself, for
    callers that would take it out of the list in a coroutine of their own."""
    for step in plan:
        try:
            result = step.function(*step.pick(args))
            if step.is_async or (
                result is not None
                and _AWAITABLE.get(type(result)) is not False
                and awaitable(result)
            ):
                result = await result
        except Exception as exc:
            raise HookError(step.plugin, hook, exc) from exc
        if result is not None:
            return result
    return None


class Hooks:
    """Calls hook implementations in pluggy's order (tryfirst/trylast respected, LIFO otherwise)."""

    def __init__(self, plugin_manager: pluggy.PluginManager) -> None:
        self._pm = plugin_manager
        self._specs: dict[str, tuple[str, ...]] = {}
        self._impls: dict[str, list[pluggy.HookImpl]] = {}
        self._plans: dict[tuple[str, tuple[str, ...]], Plan] = {}
        self.refresh()

    def refresh(self) -> None:
        """Re-read specs and implementations (after hookspecs or plugins are added or removed).

        Callers made by :meth:`bind` keep the implementations they were made with.
        """
        specs: dict[str, tuple[str, ...]] = {}
        impls: dict[str, list[pluggy.HookImpl]] = {}
        for name in dir(self._pm.hook):
            caller = getattr(self._pm.hook, name)
            if not isinstance(caller, pluggy.HookCaller) or caller.spec is None:
                continue
            specs[name] = tuple(caller.spec.argnames)
            # pluggy stores implementations in reverse call order.
            impls[name] = list(reversed(caller.get_hookimpls()))
        self._specs, self._impls, self._plans = specs, impls, {}

    @property
    def names(self) -> list[str]:
        """Every hook with a spec (built-in and added by plugins), sorted."""
        return sorted(self._specs)

    def _spec(self, hook: str) -> tuple[str, ...]:
        spec = self._specs.get(hook)
        if spec is None:
            hint = difflib.get_close_matches(hook, self._specs, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            raise UnknownHookError(f"no hook is named {hook!r}{suggestion}")
        return spec

    def plan(self, hook: str, argnames: tuple[str, ...]) -> Plan:
        """The implementations of ``hook``, each with a picker from args given as ``argnames``."""
        key = (hook, argnames)
        plan = self._plans.get(key)
        if plan is None:
            spec = self._spec(hook)
            unknown = [name for name in argnames if name not in spec]
            if unknown:
                raise UnknownHookError(f"hook {hook!r} takes no argument {unknown[0]!r}")
            plan = tuple(self._step(hook, impl, argnames) for impl in self._impls[hook])
            self._plans[key] = plan
        return plan

    def _step(self, hook: str, impl: pluggy.HookImpl, argnames: tuple[str, ...]) -> _Step:
        plugin = self._pm.get_name(impl.plugin) or repr(impl.plugin)
        wanted = (*impl.argnames, *impl.kwargnames)
        for name in wanted:
            if name not in argnames:
                raise TypeError(
                    f"hook {hook!r} called without {name!r}, which plugin {plugin!r} takes"
                )
        return _Step(
            plugin=plugin,
            function=impl.function,
            pick=_picker(wanted, argnames),
            is_async=inspect.iscoroutinefunction(impl.function),
        )

    def has(self, hook: str) -> bool:
        """True when at least one plugin implements ``hook``."""
        self._spec(hook)
        return bool(self._impls[hook])

    def implementations(self, hook: str) -> list[str]:
        """Names of the plugins implementing ``hook``, in call order."""
        self._spec(hook)
        return [self._pm.get_name(impl.plugin) or repr(impl.plugin) for impl in self._impls[hook]]

    # ----------------------------------------------------------------- by name, with kwargs

    async def call(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call every implementation; return the non-None results. A failure raises HookError."""
        argnames = tuple(kwargs)
        # The plan made before, looked up here: a call of plan() costs about 2,000 instructions
        # on each of a connection's hook calls.
        plan = self._plans.get((hook, argnames))
        if plan is None:
            plan = self.plan(hook, argnames)
        if not plan:  # most apps leave most hooks unimplemented: no run_plan coroutine then
            return []
        return await run_plan(plan, hook, tuple(kwargs.values()))

    async def first(self, hook: str, **kwargs: Any) -> Any:
        """Return the first non-None result (later implementations are not called)."""
        argnames = tuple(kwargs)
        plan = self._plans.get((hook, argnames))  # as in call()
        if plan is None:
            plan = self.plan(hook, argnames)
        if not plan:
            return None
        return await run_first(plan, hook, tuple(kwargs.values()))

    async def call_isolated(self, hook: str, **kwargs: Any) -> list[HookError]:
        """Call every implementation even if some raise (cleanup hooks); log and return failures."""
        plan = self.plan(hook, tuple(kwargs))
        if not plan:
            return []
        return await run_plan(plan, hook, tuple(kwargs.values()), isolate=True)

    async def chain(self, hook: str, value_arg: str, value: Any, **kwargs: Any) -> Any:
        """Thread ``value`` through every implementation (``before_send``); None keeps it unchanged.

        Stops early when an implementation returns ``DROP``.
        """
        names = (*kwargs, value_arg)
        head = tuple(kwargs.values())
        for step in self.plan(hook, names):
            results = await run_plan((step,), hook, (*head, value))
            if results:
                if results[0] is DROP:
                    return DROP
                value = results[0]
        return value

    def bind(self, hook: str, *argnames: str) -> Callable[..., Awaitable[list[Any]]]:
        """A caller for ``hook`` taking its arguments positionally, in ``argnames`` order, and
        behaving like :meth:`call`; for a hook fired very often (no keyword dict per call). It is
        bound to the implementations registered now (bind again after :meth:`refresh`)."""
        plan = self.plan(hook, argnames)

        async def call(*args: Any) -> list[Any]:
            return await run_plan(plan, hook, args)

        return call

    # ----------------------------------------------------------------- set-up hooks

    def call_sync(
        self, hook: str, argnames: tuple[str, ...], args_for: Callable[[str], tuple[Any, ...]]
    ) -> list[tuple[str, Any]]:
        """Call a synchronous set-up hook with the arguments ``args_for(plugin)`` gives each
        implementing plugin (``configure`` gets each its own options); returns (plugin, result)
        for each non-None result.

        Raises HookError, also when an implementation is ``async`` (set-up runs before the loop).
        """
        pairs = []
        for step in self.plan(hook, argnames):
            try:
                result = step.function(*step.pick(args_for(step.plugin)))
                if inspect.isawaitable(result):
                    if inspect.iscoroutine(result):
                        result.close()  # no "never awaited" warning on top of the real error
                    raise TypeError(f"hook {hook!r} must be a plain function, not async")
            except Exception as exc:
                raise HookError(step.plugin, hook, exc) from exc
            if result is not None:
                pairs.append((step.plugin, result))
        return pairs
