"""A plugin depending on a plugin nobody installed."""

from typing import Any

from backplane import PluginInfo, hookimpl

plugin = PluginInfo(name="missing_dep", requires_core=">=0.1", depends_on=("not_installed",))


@hookimpl
def register_routes(register: Any) -> None:
    raise AssertionError("a plugin with a missing dependency must never be called")
