"""A plugin module may implement a hook twice under other names (``specname``): both count,
and a specname that names no hook is still refused as unknown."""

from __future__ import annotations

import types
from typing import Any

from backplane import hookimpl
from backplane.loading import _unknown_hooks
from backplane.plugins import PluginSet
from tests.conftest import make_settings


def _module() -> types.ModuleType:
    module = types.ModuleType("two_parts")

    @hookimpl
    def register_meters(register: Any) -> None:
        register("first")

    @hookimpl(specname="register_meters")
    def register_more_meters(register: Any) -> None:
        register("second")

    @hookimpl(specname="register_nothing_real")
    def register_typo(register: Any) -> None:
        register("never")

    module.register_meters = register_meters  # type: ignore[attr-defined]
    module.register_more_meters = register_more_meters  # type: ignore[attr-defined]
    module.register_typo = register_typo  # type: ignore[attr-defined]
    return module


def test_specname_implementations_are_known_and_a_wrong_specname_is_not(data_dir: Any) -> None:
    plugins = PluginSet(make_settings(data_dir))
    module = _module()
    assert _unknown_hooks(plugins.manager, module) == ["register_typo"]
    del module.register_typo
    plugins.manager.register(module, name="two_parts")
    got: list[str] = []
    plugins.manager.hook.register_meters(register=got.append, settings=None, plugin_settings=None)
    assert sorted(got) == ["first", "second"]
