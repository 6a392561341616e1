"""Permission codes from the kernel and plugins, and which roles hold them.

Guards check permission codes, never role names, so a plugin can introduce a permission and
say which roles get it without the kernel knowing the plugin.

Codes that start with ``platform.`` (:data:`PLATFORM_PREFIX`) are the deployment's, not a
tenant's: no tenant role holds them (they are declared with ``roles=()``); platform operators
(``backplane operators grant EMAIL``) hold all of them, in whichever tenant they act.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backplane._contract import Permission
from backplane.identity.models import ROLES
from backplane.plugins import PluginSet

PLATFORM_PREFIX = "platform."
"""Permission codes held by platform operators only (see the module docstring)."""


def _items(plugin: str, *permissions: Any) -> list[Permission]:
    for permission in permissions:
        if not isinstance(permission, Permission):
            raise TypeError(f"register_permissions expects Permission values, got {permission!r}")
        if permission.code.startswith(PLATFORM_PREFIX) and permission.roles:
            raise ValueError(
                f"permission {permission.code!r} is a platform permission (held by platform "
                "operators, not tenant roles): declare it with roles=()"
            )
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


def platform_permissions(plugins: PluginSet) -> frozenset[str]:
    """Every ``platform.*`` code plugins declare: what a platform operator holds."""
    return frozenset(
        permission.code
        for _plugin, permission in plugins.collect("register_permissions", _items)
        if permission.code.startswith(PLATFORM_PREFIX)
    )
