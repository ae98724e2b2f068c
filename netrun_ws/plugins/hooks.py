"""The host's async hook dispatcher over pluggy's registry.

pluggy has no async support (a coroutine counts as a firstresult), so pluggy only registers,
orders and validates implementations; this module calls them: each implementation receives just the
arguments it names, awaitables are awaited, and failures are attributed to the plugin that raised.
Which hooks have implementations is computed once, so an event nobody listens to costs one attribute
test on the per-message path.
"""

from __future__ import annotations

import inspect
import logging
import operator
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pluggy

logger = logging.getLogger("netrun_ws.plugins.hooks")


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


@dataclass(frozen=True, slots=True)
class _Impl:
    plugin: str
    function: Callable[..., Any]
    argnames: tuple[str, ...]
    # Decided once: awaiting is skipped for plain functions on the per-message path.
    is_async: bool
    # kwargs -> the positional arguments this implementation takes (a C-level itemgetter).
    pick: Callable[[dict[str, Any]], tuple[Any, ...]]


def _picker(argnames: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    if not argnames:
        return lambda kwargs: ()
    if len(argnames) == 1:
        only = argnames[0]
        return lambda kwargs: (kwargs[only],)
    return operator.itemgetter(*argnames)


def _positional_picker(
    wanted: tuple[str, ...], given: tuple[str, ...]
) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """args (in ``given`` order) -> the arguments an implementation takes (``wanted``), in C."""
    positions = [given.index(name) for name in wanted]
    start = positions[0] if positions else 0
    if positions == list(range(start, start + len(positions))):  # a run, one argument, or none
        return operator.itemgetter(slice(start, start + len(positions)))
    return operator.itemgetter(*positions)  # two or more, out of order or with gaps


# Each caller below awaits a result when the implementation is ``async def``, or when a plain
# function returned an awaitable; a plain function's None costs no awaitable check.


class Hooks:
    """Calls hook implementations in pluggy's order (tryfirst/trylast respected, LIFO otherwise)."""

    def __init__(self, plugin_manager: pluggy.PluginManager) -> None:
        self._pm = plugin_manager
        self._impls: dict[str, tuple[_Impl, ...]] = {}
        self.refresh()

    def refresh(self) -> None:
        """Recompute the implementations of every hook (after plugins are added or removed)."""
        impls: dict[str, tuple[_Impl, ...]] = {}
        for name in dir(self._pm.hook):
            caller = getattr(self._pm.hook, name)
            if not isinstance(caller, pluggy.HookCaller):
                continue
            # pluggy stores implementations in reverse call order.
            ordered = reversed(caller.get_hookimpls())
            impls[name] = tuple(
                _Impl(
                    plugin=self._pm.get_name(i.plugin) or repr(i.plugin),
                    function=i.function,
                    argnames=(names := tuple(i.argnames) + tuple(i.kwargnames)),
                    is_async=inspect.iscoroutinefunction(i.function),
                    pick=_picker(names),
                )
                for i in ordered
            )
        self._impls = impls

    def has(self, hook: str) -> bool:
        """True when at least one plugin implements ``hook``."""
        return bool(self._impls.get(hook))

    def implementations(self, hook: str) -> list[str]:
        """Names of the plugins implementing ``hook``, in call order."""
        return [impl.plugin for impl in self._impls.get(hook, ())]

    def _iter(self, hook: str) -> Iterator[_Impl]:
        return iter(self._impls.get(hook, ()))

    def _call_plain(self, impl: _Impl, hook: str, kwargs: dict[str, Any]) -> Any:
        try:
            result = impl.function(*impl.pick(kwargs))
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()  # avoid a "never awaited" warning on top of the real error
                raise TypeError(f"hook {hook!r} must be a plain function, not async")
        except Exception as exc:
            raise HookError(impl.plugin, hook, exc) from exc
        return result

    def call_sync(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call a synchronous setup hook; returns the non-None results. Raises HookError."""
        results = [self._call_plain(impl, hook, kwargs) for impl in self._iter(hook)]
        return [result for result in results if result is not None]

    def call_sync_by_plugin(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Like :meth:`call_sync`, pairing each non-None result with its plugin's name."""
        pairs = [(impl.plugin, self._call_plain(impl, hook, kwargs)) for impl in self._iter(hook)]
        return [(plugin, result) for plugin, result in pairs if result is not None]

    def call_sync_each(self, hook: str, per_plugin: Callable[[str], dict[str, Any]]) -> None:
        """Call a synchronous hook with arguments chosen per implementing plugin (``configure``)."""
        for impl in self._iter(hook):
            self._call_plain(impl, hook, per_plugin(impl.plugin))

    async def call(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call every implementation; return the non-None results. A failure raises HookError."""
        results = []
        for impl in self._iter(hook):
            try:
                result = impl.function(*impl.pick(kwargs))
                if impl.is_async or (result is not None and hasattr(result, "__await__")):
                    result = await result
            except Exception as exc:
                raise HookError(impl.plugin, hook, exc) from exc
            if result is not None:
                results.append(result)
        return results

    def bind(self, hook: str, *argnames: str) -> Callable[..., Awaitable[list[Any]]]:
        """A caller for ``hook`` that takes its arguments positionally, in ``argnames`` order,
        and behaves like :meth:`call`. For the per-message path: no keyword dict is built and
        each implementation's arguments are sliced out of the tuple by a C-level itemgetter.
        It is bound to the implementations registered now (bind again after :meth:`refresh`).
        """
        plan = tuple(
            (impl.plugin, impl.function, _positional_picker(impl.argnames, argnames), impl.is_async)
            for impl in self._iter(hook)
        )

        async def call(*args: Any) -> list[Any]:
            results = []
            for plugin, function, pick, is_async in plan:
                try:
                    result = function(*pick(args))
                    if is_async or (result is not None and hasattr(result, "__await__")):
                        result = await result
                except Exception as exc:
                    raise HookError(plugin, hook, exc) from exc
                if result is not None:
                    results.append(result)
            return results

        return call

    async def first(self, hook: str, **kwargs: Any) -> Any:
        """Return the first non-None result (later implementations are not called)."""
        for impl in self._iter(hook):
            try:
                result = impl.function(*impl.pick(kwargs))
                if impl.is_async or (result is not None and hasattr(result, "__await__")):
                    result = await result
            except Exception as exc:
                raise HookError(impl.plugin, hook, exc) from exc
            if result is not None:
                return result
        return None

    async def chain(self, hook: str, value_arg: str, value: Any, **kwargs: Any) -> Any:
        """Thread ``value`` through every implementation (``before_send``); None keeps it unchanged.

        Stops early when an implementation returns ``DROP``.
        """
        for impl in self._iter(hook):
            kwargs[value_arg] = value
            try:
                result = impl.function(*impl.pick(kwargs))
                if impl.is_async or (result is not None and hasattr(result, "__await__")):
                    result = await result
            except Exception as exc:
                raise HookError(impl.plugin, hook, exc) from exc
            if result is DROP:
                return DROP
            if result is not None:
                value = result
        return value

    async def call_isolated(self, hook: str, **kwargs: Any) -> list[HookError]:
        """Call every implementation even if some raise (cleanup hooks); log and return failures."""
        failures = []
        for impl in self._iter(hook):
            try:
                result = impl.function(*impl.pick(kwargs))
                if impl.is_async or (result is not None and hasattr(result, "__await__")):
                    await result
            except Exception as exc:
                failure = HookError(impl.plugin, hook, exc)
                logger.error("%s", failure, exc_info=exc)
                failures.append(failure)
        return failures
