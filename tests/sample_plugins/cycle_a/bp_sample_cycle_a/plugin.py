"""Half of a dependency cycle: both halves must be skipped."""

from typing import Any

from backplane import PluginInfo, hookimpl

plugin = PluginInfo(name="cycle_a", requires_core=">=0.1", depends_on=("cycle_b",))


@hookimpl
def register_routes(register: Any) -> None:
    raise AssertionError("a plugin in a dependency cycle must never be called")
