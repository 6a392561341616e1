"""``platform.*`` permission codes belong to platform operators (``backplane operators``), never
to a tenant role: a plugin declaring one for a role is refused, and no role's set holds one.
The grant itself, the session-only rule and revocation are proven end to end by the
marketplace plugin's tests (marketplace/tests/test_marketplace_operators.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from backplane import Permission
from backplane.identity.permissions import (
    _items,
    permission_codes,
    platform_permissions,
    role_permissions,
)


class _Plugins:
    """Just enough of a plugin set: one plugin registering ``permissions``."""

    def __init__(self, *permissions: Permission) -> None:
        self.permissions = permissions

    def collect(self, _hook: str, make: Callable[..., list[Any]]) -> list[tuple[str, Any]]:
        return [("sample", item) for item in make("sample", *self.permissions)]


def test_a_platform_code_held_by_a_tenant_role_is_refused() -> None:
    with pytest.raises(ValueError, match=r"platform permission .* roles=\(\)"):
        _items("sample", Permission(code="platform.sample.review"))  # default: owner, admin


def test_platform_codes_go_to_operators_only() -> None:
    plugins: Any = _Plugins(
        Permission(code="sample.read", roles=("owner", "viewer")),
        Permission(code="platform.sample.review", roles=()),
    )
    by_role = role_permissions(plugins)
    assert by_role["owner"] == frozenset({"sample.read"})
    assert all("platform.sample.review" not in codes for codes in by_role.values())
    # API keys are scoped to codes some role holds: never to a platform code.
    assert "platform.sample.review" not in permission_codes(by_role)
    assert platform_permissions(plugins) == frozenset({"platform.sample.review"})
