"""Meters registered by the kernel and plugins through ``register_meters``."""

from __future__ import annotations

from backplane._contract import Meter
from backplane.plugins import PluginSet, by_name, owned_items

ADDITIVE = ("count", "sum")
"""Aggregations whose running total can back a quota."""


_items = owned_items(Meter, "register_meters", lambda m: m.code, "area.metric")


def collect_meters(plugins: PluginSet) -> dict[str, Meter]:
    return by_name(plugins.collect("register_meters", _items), lambda m: m.code, "meter")
