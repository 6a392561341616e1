"""Meters registered by the kernel and plugins through ``register_meters``."""

from __future__ import annotations

from typing import Any

from backplane._contract import Meter
from backplane.plugins import PluginSet, by_name, check_owned_name

ADDITIVE = ("count", "sum")
"""Aggregations whose running total can back a quota."""


def _items(plugin: str, *meters: Any) -> list[Meter]:
    for meter in meters:
        if not isinstance(meter, Meter):
            raise TypeError(f"register_meters expects Meter values, got {meter!r}")
        check_owned_name(plugin, meter.code, "meter", "area.metric")
    return list(meters)


def collect_meters(plugins: PluginSet) -> dict[str, Meter]:
    return by_name(plugins.collect("register_meters", _items), lambda m: m.code, "meter")
