"""A plugin written for a kernel that does not exist yet."""

from typing import Any

from backplane import PluginInfo, hookimpl

plugin = PluginInfo(name="incompatible", requires_core=">=99.0")


@hookimpl
def register_routes(register: Any) -> None:
    raise AssertionError("an incompatible plugin must never be called")
