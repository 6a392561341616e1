"""The loaded plugins of a process and how the kernel calls their hooks (:class:`PluginSet`).

Loading them (discovery, validation, ordering: :func:`backplane.loading.load_plugins`) sits at
the top of the kernel, since it registers the kernel's own defaults, which reach every layer;
calling hooks sits at the bottom, since every layer calls them.
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pluggy

from backplane import hookspecs
from backplane.settings import Settings

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "backplane.plugins"
KERNEL_PLUGIN = "core"


class PluginLoadError(RuntimeError):
    """Raised in strict mode when any plugin would be skipped."""


class Status(enum.StrEnum):
    LOADED = "loaded"
    SKIPPED = "skipped"


class SkipReason(enum.StrEnum):
    IMPORT_ERROR = "import-error"
    INVALID_PLUGIN = "invalid-plugin"
    INCOMPATIBLE_CORE = "incompatible-core"
    MISSING_DEPENDENCY = "missing-dependency"
    DEPENDENCY_SKIPPED = "dependency-skipped"
    DEPENDENCY_CYCLE = "dependency-cycle"
    INVALID_SETTINGS = "invalid-settings"
    HOOK_ERROR = "hook-error"
    PATH_CONFLICT = "path-conflict"
    NOT_FOUND = "not-found"


class PluginRecord(msgspec.Struct, kw_only=True):
    """What the kernel knows about one plugin; serialised by ``plugins list --json``."""

    name: str
    status: Status
    version: str | None = None
    distribution: str | None = None
    module: str | None = None
    requires_core: str = ""
    depends_on: list[str] = msgspec.field(default_factory=list)
    hooks: list[str] = msgspec.field(default_factory=list)
    reason_code: SkipReason | None = None
    reason: str | None = None

    def skip(self, code: SkipReason, reason: str) -> None:
        self.status, self.reason_code, self.reason = Status.SKIPPED, code, reason


class PluginSet:
    """The loaded plugins of one process: a pluggy manager plus a record per plugin.

    ``call`` invokes a hook plugin by plugin (kernel first, then dependency order), so that
    every registration is attributed to its plugin and traced as its own span.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.order: list[str] = []
        self.plugin_settings: dict[str, Any] = {}

    # -- introspection -------------------------------------------------------------------
    @property
    def loaded(self) -> list[str]:
        """Names of loaded plugins in call order (``core`` first)."""
        return list(self.order)

    @property
    def skipped(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.status is Status.SKIPPED]

    @functools.cached_property
    def public_settings(self) -> Settings:
        """The kernel's settings as plugins see them (no secret key, no URL credentials)."""
        return self.settings.public()

    def settings_for(self, name: str) -> Any:
        """The validated settings struct of plugin ``name`` (None when it declares none)."""
        return self.plugin_settings.get(name)

    # -- calling hooks -------------------------------------------------------------------
    def implementations(self, hook: str) -> Iterator[tuple[str, Callable[..., Any]]]:
        """``(plugin, function)`` for every implementation of ``hook``, in plugin order; the
        kernel's default modules (``core.<concern>``) all count as plugin ``core``."""
        caller = getattr(self.manager.hook, hook)
        by_plugin: dict[str, list[Callable[..., Any]]] = {}
        for impl in caller.get_hookimpls():
            owner = impl.plugin_name.partition(".")[0]
            by_plugin.setdefault(owner, []).append(_taking_what_it_declares(impl))
        for name in self.order:
            for function in by_plugin.get(name, ()):
                yield name, function

    def call(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call ``hook`` on every plugin that implements it; return ``(plugin, result)`` pairs.

        A ``kernel`` argument reaches each plugin as its own view (``kernel.for_plugin``).
        Callables returned are called; awaitables are *returned* for an async caller to await
        (use :meth:`acall` from async code).
        """
        from backplane.telemetry import hook_span

        results = []
        for name, function in self.implementations(hook):
            with hook_span(hook, name):
                results.append((name, _called(function(**_for(name, kwargs)))))
        return results

    async def acall(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Like :meth:`call`, awaiting awaitable results inside each plugin's span."""
        from backplane.telemetry import hook_span

        results = []
        for name, function in self.implementations(hook):
            with hook_span(hook, name):
                result = _called(function(**_for(name, kwargs)))
                results.append((name, await result if inspect.isawaitable(result) else result))
        return results

    def collect(self, hook: str, make: Callable[..., Any]) -> list[tuple[str, Any]]:
        """Call a registration hook and gather ``(plugin, item)`` pairs.

        Each implementation may take ``settings`` (the kernel's, without secrets) and
        ``plugin_settings`` (its own plugin's validated settings) besides ``register``.

        ``make(plugin_name, *args, **options)`` turns one ``register(...)`` call into a list of
        items; a non-None return value of the implementation is registered the same way. A
        plugin whose implementation raises (or registers something invalid) is unregistered and
        recorded as skipped, its items from this call discarded; in strict mode, or for the
        kernel itself, the error propagates as :class:`PluginLoadError`.
        """
        gathered: list[tuple[str, Any]] = []
        from backplane.telemetry import hook_span

        for name, function in list(self.implementations(hook)):
            mine: list[Any] = []

            def register(
                *args: Any, _plugin: str = name, _into: list[Any] = mine, **options: Any
            ) -> None:
                _into.extend(make(_plugin, *args, **options))

            try:
                with hook_span(hook, name):
                    result = _called(
                        function(
                            register=register,
                            settings=self.public_settings,
                            plugin_settings=self.settings_for(name),
                        )
                    )
                    if inspect.isawaitable(result):
                        if inspect.iscoroutine(result):
                            result.close()
                        raise TypeError(f"{hook} must not be async")
                    if result is not None:
                        register(*(result if isinstance(result, list | tuple) else [result]))
            except Exception as exc:  # noqa: BLE001 - isolating plugin failures is the point
                self._hook_failed(name, hook, exc)
                continue
            gathered.extend((name, item) for item in mine)
        return gathered

    def _hook_failed(self, name: str, hook: str, exc: Exception) -> None:
        """Isolate a plugin whose registration hook raised: unregister and record why."""
        self.refuse(name, SkipReason.HOOK_ERROR, f"{hook} raised {type(exc).__name__}: {exc}", exc)

    def refuse(
        self, name: str, code: SkipReason, reason: str, exc: Exception | None = None
    ) -> None:
        """Skip loaded plugin ``name`` for ``reason``: unregistered, recorded as skipped. In
        strict mode, or for the kernel itself, :class:`PluginLoadError` instead."""
        if name == KERNEL_PLUGIN or self.settings.strict_plugins:
            raise PluginLoadError(f"plugin {name!r}: {reason}") from exc
        log.error("plugin %r disabled: %s", name, reason)
        plugin = self.manager.get_plugin(name)
        if plugin is not None:
            self.manager.unregister(plugin)
        self.order.remove(name)
        self.records[name].skip(code, reason)


def _taking_what_it_declares(impl: pluggy.HookImpl) -> Callable[..., Any]:
    """The implementation, called with only the hook arguments it declares: as through pluggy,
    a hook can gain arguments without breaking plugins written before."""
    declared = set(impl.argnames) | set(impl.kwargnames)
    function = impl.function

    def call(**kwargs: Any) -> Any:
        return function(**{k: v for k, v in kwargs.items() if k in declared})

    call.__name__ = getattr(function, "__name__", "hook")
    return call


def _called(result: Any) -> Any:
    """A hook's result; a callable one (not a class) is called, its result taken instead."""
    return result() if callable(result) and not inspect.isclass(result) else result


def _for(plugin: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The hook arguments of one plugin: its own view of the kernel, if one is passed."""
    kernel = kwargs.get("kernel")
    if kernel is None or kernel.plugin == plugin:
        return kwargs
    return {**kwargs, "kernel": kernel.for_plugin(plugin)}


OWNED_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\Z")


def check_owned_name(plugin: str, name: str, kind: str, example: str) -> None:
    """A registered name (a meter, an event type) looks like ``area.thing`` and, for a plugin,
    starts with the plugin's name: names from different plugins cannot collide."""
    if not OWNED_NAME.match(name):
        raise ValueError(f"{kind} {name!r} must look like {example!r}")
    if plugin not in (KERNEL_PLUGIN, name.split(".", 1)[0]):
        raise ValueError(f"{kind} {name!r} must start with the plugin name {plugin!r}")


def owned_items(kind: type, hook: str, name_of: Callable[[Any], str], example: str) -> Any:
    """The ``make`` of :meth:`PluginSet.collect` for named contract values (meters, event
    types): each must be a ``kind`` whose name :func:`check_owned_name` accepts."""
    label = kind.__name__

    def make(plugin: str, *items: Any) -> list[Any]:
        for item in items:
            if not isinstance(item, kind):
                raise TypeError(f"{hook} expects {label} values, got {item!r}")
            check_owned_name(plugin, name_of(item), _spaced(label).lower(), example)
        return list(items)

    return make


def _spaced(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name)


def by_name(pairs: list[tuple[str, Any]], name: Callable[[Any], str], kind: str) -> dict[str, Any]:
    """Registered items by their name; a name registered twice (by any plugins) is an error."""
    found: dict[str, Any] = {}
    for _plugin, item in pairs:
        if name(item) in found:
            raise ValueError(f"{kind} {name(item)!r} is registered twice")
        found[name(item)] = item
    return found
