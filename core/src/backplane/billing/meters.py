"""Meters registered by the kernel and plugins through ``register_meters``."""

from __future__ import annotations

import re
from typing import Any

from backplane._contract import Meter
from backplane.plugins import KERNEL_PLUGIN, PluginSet

CODE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\Z")
ADDITIVE = ("count", "sum")
"""Aggregations whose running total can back a quota."""


def _items(plugin: str, *meters: Any) -> list[Meter]:
    for meter in meters:
        if not isinstance(meter, Meter):
            raise TypeError(f"register_meters expects Meter values, got {meter!r}")
        if not CODE.match(meter.code):
            raise ValueError(f"meter code {meter.code!r} must look like 'area.metric'")
        prefix = meter.code.split(".", 1)[0]
        if plugin not in (KERNEL_PLUGIN, prefix):
            raise ValueError(f"meter {meter.code!r} must start with the plugin name {plugin!r}")
    return list(meters)


def collect_meters(plugins: PluginSet) -> dict[str, Meter]:
    meters: dict[str, Meter] = {}
    for _plugin, meter in plugins.collect("register_meters", _items):
        if meter.code in meters:
            raise ValueError(f"meter {meter.code!r} is registered twice")
        meters[meter.code] = meter
    return meters
