"""Permission codes from the kernel and plugins, and which roles hold them.

Guards check permission codes, never role names, so a plugin can introduce a permission and
say which roles get it without the kernel knowing the plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backplane._contract import Permission
from backplane.identity.models import ROLES
from backplane.plugins import PluginSet


def _items(plugin: str, *permissions: Any) -> list[Permission]:
    for permission in permissions:
        if not isinstance(permission, Permission):
            raise TypeError(f"register_permissions expects Permission values, got {permission!r}")
        unknown = set(permission.roles) - set(ROLES)
        if unknown:
            raise ValueError(f"permission {permission.code!r} names unknown role(s) {unknown}")
    return list(permissions)


def role_permissions(plugins: PluginSet) -> dict[str, frozenset[str]]:
    """Role -> permission codes, from every plugin's ``register_permissions``."""
    by_role: dict[str, set[str]] = {role: set() for role in ROLES}
    for _plugin, permission in plugins.collect("register_permissions", _items):
        for role in permission.roles:
            by_role[role].add(permission.code)
    return {role: frozenset(codes) for role, codes in by_role.items()}


def permission_codes(by_role: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """Every permission some role holds: the codes an API key's scopes may name."""
    return frozenset[str]().union(*by_role.values())
