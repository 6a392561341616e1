"""A plugin module may implement a hook under another name (pluggy's ``specname``), as plugins
assembled from parts do (the documents plugin's bulk jobs add routes, tasks and privacy hooks
beside the plugin's own); the kernel checks the hook it names, not the function's name."""

from __future__ import annotations

import types
from typing import Any

import pluggy

from backplane import hookimpl, hookspecs
from backplane.loading import _unknown_hooks


def _manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager("backplane")
    manager.add_hookspecs(hookspecs)
    return manager


def _module(**functions: Any) -> types.ModuleType:
    module = types.ModuleType("a_plugin")
    for name, function in functions.items():
        setattr(module, name, function)
    return module


def test_an_implementation_bound_by_specname_is_known_and_called() -> None:
    @hookimpl(specname="register_meters")
    def register_more_meters(register: Any) -> None:
        register("second")

    @hookimpl
    def register_meters(register: Any) -> None:
        register("first")

    module = _module(register_meters=register_meters, register_more_meters=register_more_meters)
    manager = _manager()
    assert _unknown_hooks(manager, module) == []
    manager.register(module, name="a_plugin")
    got: list[str] = []
    manager.hook.register_meters(register=got.append, settings=None, plugin_settings=None)
    assert sorted(got) == ["first", "second"]


def test_a_specname_naming_no_hook_is_unknown() -> None:
    @hookimpl(specname="register_widgets")
    def widgets(register: Any) -> None:
        """Not a hook of the contract."""

    @hookimpl
    def register_gadgets(register: Any) -> None:
        """Nor this one."""

    module = _module(widgets=widgets, register_gadgets=register_gadgets)
    assert _unknown_hooks(_manager(), module) == ["register_gadgets", "widgets"]
