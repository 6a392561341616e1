"""Meters registered by the kernel and plugins through ``register_meters``."""

from __future__ import annotations

from backplane._contract import Meter
from backplane.plugins import PluginSet, by_name, owned_items

ADDITIVE = ("count", "sum")
"""Aggregations whose running total per period can back a quota."""
LIMITED = (*ADDITIVE, "latest")
"""Aggregations that may have limits: additive ones per period (held by ``kernel.usage``), and
``latest``, a gauge whose limit caps the level it reports, held by the service that owns the
level (``files.bytes``: :mod:`backplane.files.quota`)."""


_items = owned_items(Meter, "register_meters", lambda m: m.code, "area.metric")


def collect_meters(plugins: PluginSet) -> dict[str, Meter]:
    return by_name(plugins.collect("register_meters", _items), lambda m: m.code, "meter")
