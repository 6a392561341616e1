"""Plugin discovery, validation and ordering: :func:`load_plugins`.

Plugins are modules named by entry points in the ``backplane.plugins`` group, found through
stevedore once per process. Each may declare a :class:`backplane.PluginInfo` as ``plugin``.
A plugin that fails to import, is incompatible with the running kernel, misses a dependency,
sits in a dependency cycle or has invalid settings is *skipped with its reason*: the kernel keeps
starting (``strict_plugins`` turns any skip into :class:`PluginLoadError`). The kernel's own
defaults (:mod:`backplane.defaults`, a module a concern) are registered first, through the same
hooks, as ``core``.
"""

from __future__ import annotations

import dataclasses
import functools
import graphlib
import importlib
import importlib.metadata
import logging
import types
from collections.abc import Mapping
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from backplane import __version__ as core_version
from backplane import hookspecs
from backplane._config import Schema, SettingsError
from backplane._contract import PLUGIN_NAME_PATTERN, PluginInfo
from backplane.plugins import (
    ENTRY_POINT_GROUP,
    KERNEL_PLUGIN,
    PluginLoadError,
    PluginRecord,
    PluginSet,
    SkipReason,
    Status,
)
from backplane.settings import Settings, variable_name

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Candidate:
    """A plugin module imported successfully, awaiting validation and ordering."""

    name: str
    module: types.ModuleType
    info: PluginInfo
    settings: Any = None


def load_plugins(settings: Settings) -> PluginSet:
    """Discover, validate and register plugins according to ``settings``."""
    plugin_set = PluginSet(settings)
    _register_defaults(plugin_set)
    candidates = _import_candidates(settings, plugin_set.records)
    _validate(candidates, plugin_set)
    ordered = _order(candidates, plugin_set.records)
    for candidate in ordered:
        try:
            plugin_set.manager.register(candidate.module, name=candidate.name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            plugin_set.records[candidate.name].skip(SkipReason.INVALID_PLUGIN, str(exc))
            continue
        unknown = _unknown_hooks(plugin_set.manager, candidate.module)
        if unknown:
            plugin_set.manager.unregister(candidate.module)
            why = f"implements unknown hook(s) {', '.join(unknown)}"
            plugin_set.records[candidate.name].skip(SkipReason.INVALID_PLUGIN, why)
            continue
        plugin_set.order.append(candidate.name)
        plugin_set.plugin_settings[candidate.name] = candidate.settings
        plugin_set.records[candidate.name].hooks = _hooks_of(plugin_set.manager, candidate.module)

    for section in sorted(set(settings.plugin_settings) - set(plugin_set.records)):
        log.warning("settings for plugin %r, which is not installed, are ignored", section)

    if settings.strict_plugins and plugin_set.skipped:
        problems = "; ".join(f"{r.name}: {r.reason}" for r in plugin_set.skipped)
        raise PluginLoadError(f"strict plugin mode: plugin(s) could not load: {problems}")
    for record in plugin_set.skipped:
        log.warning("plugin %r skipped (%s): %s", record.name, record.reason_code, record.reason)
    return plugin_set


def _register_defaults(plugin_set: PluginSet) -> None:
    """The kernel's own modules (:mod:`backplane.defaults`), first, as plugin ``core``."""
    from backplane import defaults

    hooks: set[str] = set()
    for concern in defaults.CONCERNS:
        module = importlib.import_module(f"{defaults.__name__}.{concern}")
        plugin_set.manager.register(module, name=f"{KERNEL_PLUGIN}.{concern}")
        hooks.update(_hooks_of(plugin_set.manager, module))
    plugin_set.order.append(KERNEL_PLUGIN)
    plugin_set.records[KERNEL_PLUGIN] = PluginRecord(
        name=KERNEL_PLUGIN,
        status=Status.LOADED,
        version=core_version,
        distribution="backplane-core",
        module=defaults.__name__,
        hooks=sorted(hooks),
    )


def _import_candidates(settings: Settings, records: dict[str, PluginRecord]) -> list[_Candidate]:
    """Import the selected entry points through stevedore, recording failures as skips."""
    from stevedore import ExtensionManager, NamedExtensionManager

    failures: list[tuple[importlib.metadata.EntryPoint, BaseException]] = []

    def on_failure(_manager: Any, entry_point: Any, exc: BaseException) -> None:
        failures.append((entry_point, exc))

    selected = settings.plugins
    if selected is not None:
        selected = [n for n in selected if n != KERNEL_PLUGIN]
        if not selected:
            return []
        manager: Any = NamedExtensionManager(
            ENTRY_POINT_GROUP,
            names=selected,
            on_load_failure_callback=on_failure,
            on_missing_entrypoints_callback=lambda names: None,
        )
        for missing in sorted(set(selected) - set(manager.names()) - {f[0].name for f in failures}):
            records[missing] = PluginRecord(
                name=missing,
                status=Status.SKIPPED,
                reason_code=SkipReason.NOT_FOUND,
                reason=f"BACKPLANE_PLUGINS names {missing!r} but no installed distribution "
                f"provides an entry point of that name in group {ENTRY_POINT_GROUP!r}",
            )
    else:
        manager = ExtensionManager(ENTRY_POINT_GROUP, on_load_failure_callback=on_failure)

    for entry_point, exc in failures:
        distribution, version = _distribution_of(entry_point)
        records[entry_point.name] = PluginRecord(
            name=entry_point.name,
            status=Status.SKIPPED,
            module=entry_point.value.split(":")[0],
            distribution=distribution,
            version=version,
            reason_code=SkipReason.IMPORT_ERROR,
            reason=f"importing {entry_point.value} failed: {type(exc).__name__}: {exc}",
        )

    candidates = []
    for extension in manager.extensions:
        name, module = extension.name, extension.plugin
        distribution, version = _distribution_of(extension.entry_point)
        record = PluginRecord(
            name=name,
            status=Status.LOADED,
            module=getattr(module, "__name__", None),
            distribution=distribution,
            version=version,
        )
        records[name] = record
        problem = _check_shape(name, module)
        if problem:
            records[name].skip(SkipReason.INVALID_PLUGIN, problem)
            continue
        info = getattr(module, "plugin", None) or PluginInfo(name=name)
        record.requires_core = info.requires_core
        record.depends_on = list(info.depends_on)
        candidates.append(_Candidate(name, module, info))
    return candidates


def _check_shape(name: str, module: Any) -> str | None:
    if name == KERNEL_PLUGIN:
        return f"the name {KERNEL_PLUGIN!r} is reserved for the kernel"
    if not PLUGIN_NAME_PATTERN.match(name):
        return f"plugin name {name!r} must match {PLUGIN_NAME_PATTERN.pattern}"
    if not isinstance(module, types.ModuleType):
        return "the entry point must name a module, not an object inside it"
    info = getattr(module, "plugin", None)
    if info is not None and not isinstance(info, PluginInfo):
        return "its 'plugin' attribute is not a backplane.PluginInfo"
    if info is not None and info.name != name:
        return f"entry point name {name!r} differs from PluginInfo.name {info.name!r}"
    return None


def _validate(candidates: list[_Candidate], plugin_set: PluginSet) -> None:
    """Check core compatibility and settings; drop failures from ``candidates`` in place."""
    for candidate in list(candidates):
        problem = _core_problem(candidate.info.requires_core)
        if problem is None:
            reason = _load_settings(candidate, plugin_set.settings)
            problem = (SkipReason.INVALID_SETTINGS, reason) if reason else None
        if problem is not None:
            plugin_set.records[candidate.name].skip(*problem)
            candidates.remove(candidate)


def _core_problem(spec_text: str) -> tuple[SkipReason, str] | None:
    try:
        spec = SpecifierSet(spec_text)
    except InvalidSpecifier:
        why = f"requires_core {spec_text!r} is not a valid version specifier"
        return SkipReason.INVALID_PLUGIN, why
    if spec_text and not spec.contains(Version(core_version), prereleases=True):
        why = f"requires backplane-core {spec_text}, running {core_version}"
        return SkipReason.INCOMPATIBLE_CORE, why
    return None


def _load_settings(candidate: _Candidate, settings: Settings) -> str | None:
    """Build the plugin's settings struct; a problem names the variable or file key to fix."""
    struct = candidate.info.settings
    raw = settings.plugin_settings.get(candidate.name, {})
    if struct is None:
        if raw:
            return f"settings given ({', '.join(sorted(raw))}) but the plugin declares none"
        return None
    try:
        schema = Schema(struct, functools.partial(variable_name, plugin=candidate.name))
        section = ("plugins", candidate.name)
        given = schema.from_table(
            raw, lambda key: settings.sources.get(".".join((*section, *key))) or schema.name(key)
        )
        candidate.settings = schema.build(given)
    except SettingsError as exc:
        return str(exc)
    return None


def _order(candidates: list[_Candidate], records: dict[str, PluginRecord]) -> list[_Candidate]:
    """Topologically order candidates; skip missing dependencies, cycles and their dependents."""
    by_name = {c.name: c for c in candidates}
    while True:
        _drop_unmet(by_name, records)
        graph = {
            n: [d for d in c.info.depends_on if d != KERNEL_PLUGIN] for n, c in by_name.items()
        }
        try:
            return [by_name[n] for n in graphlib.TopologicalSorter(graph).static_order()]
        except graphlib.CycleError as exc:
            cycle = exc.args[1]
            for member in sorted(set(cycle)):
                why = f"dependency cycle {' -> '.join(reversed(cycle))}"
                records[member].skip(SkipReason.DEPENDENCY_CYCLE, why)
                del by_name[member]


def _drop_unmet(by_name: dict[str, _Candidate], records: dict[str, PluginRecord]) -> None:
    """Skip candidates depending on a plugin that is not a candidate, until none is left."""
    changed = True
    while changed:
        changed = False
        for candidate in list(by_name.values()):
            unmet = [
                d for d in candidate.info.depends_on if d != KERNEL_PLUGIN and d not in by_name
            ]
            if not unmet:
                continue
            dep = unmet[0]
            if dep in records:
                why = f"depends on plugin {dep!r}, which was skipped"
                records[candidate.name].skip(SkipReason.DEPENDENCY_SKIPPED, why)
            else:
                why = f"depends on plugin {dep!r}, which is not installed or not selected"
                records[candidate.name].skip(SkipReason.MISSING_DEPENDENCY, why)
            del by_name[candidate.name]
            changed = True


def _needs(candidate: _Candidate) -> list[str]:
    return [d for d in candidate.info.depends_on if d != KERNEL_PLUGIN]


def _hooks_of(manager: pluggy.PluginManager, module: Any) -> list[str]:
    return sorted(caller.name for caller in manager.get_hookcallers(module) or [])


def _unknown_hooks(manager: pluggy.PluginManager, module: Any) -> list[str]:
    """Implementations naming no hook: by their function name, or by pluggy's ``specname``
    (``@hookimpl(specname="register_routes")``), which lets one plugin module implement a hook
    more than once, each part of a larger plugin in its own clearly separated function."""
    known = {name for name in vars(hookspecs) if not name.startswith("_")}
    unknown = []
    for attribute in dir(module):
        options = manager.parse_hookimpl_opts(module, attribute)
        if options is not None and (options.get("specname") or attribute) not in known:
            unknown.append(attribute)
    return unknown


def _distribution_of(entry_point: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    """The name and version of the distribution that declares ``entry_point``.

    Asked of the entry point's own distribution, not of the package it imports: an editable
    install (``pip install -e``) lists no package files, so ``packages_distributions()`` knew
    nothing of it. stevedore's cached entry points carry no distribution; those are matched
    with the ones ``importlib.metadata`` finds, by name and target.
    """
    dist = entry_point.dist or _declaring_distributions().get((entry_point.name, entry_point.value))
    return (None, None) if dist is None else (dist.name, dist.version)


@functools.cache
def _declaring_distributions() -> Mapping[tuple[str, str], importlib.metadata.Distribution]:
    """(name, target) of each plugin entry point -> its distribution (one scan, on demand)."""
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return {(e.name, e.value): e.dist for e in found if e.dist is not None}
