"""``kernel.member``: a plugin finds a member of its tenant by user id or address, and nobody
of another tenant (a user who is a member elsewhere only is None here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backplane import Member
from backplane.testing import (
    CHEAP_PASSWORD_HASHING,
    SeededTenant,
    run_in_tenant,
    seed_tenant,
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "kitchen_sink",
        **CHEAP_PASSWORD_HASHING,
    }
    if request.param == "postgres":
        environ |= request.getfixturevalue("backplane_postgres_database")
    return environ


@pytest.fixture
def backplane_postgres_url() -> str:
    """The server the kernel's own tests use when ``BACKPLANE_TEST_POSTGRES_URL`` is unset."""
    import os

    return os.environ.get(
        "BACKPLANE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )


def test_kernel_member_finds_this_tenants_members_only(
    backplane_client: Any, backplane_tenant: SeededTenant, backplane_plugins: Any
) -> None:
    other = seed_tenant(backplane_plugins, "elsewhere")
    joined = backplane_client.post(
        "/api/tenant/members", json={"email": "Pat@Example.org", "role": "viewer"}
    )
    assert joined.status_code == 201, joined.text
    pat = joined.json()["user_id"]

    async def look(kernel: Any) -> list[Member | None]:
        return [
            await kernel.member(user_id=backplane_tenant.user_id),
            await kernel.member(email=" PAT@example.org "),
            await kernel.member(user_id=other.user_id),  # a user, but of another tenant
            await kernel.member(email=other.email),
        ]

    found = run_in_tenant(backplane_client, backplane_tenant, look, plugin="kitchen_sink")
    owner = Member(user_id=backplane_tenant.user_id, email=backplane_tenant.email, role="owner")
    assert found[0] == owner
    assert found[1] is not None
    assert (str(found[1].user_id), found[1].email, found[1].role) == (
        pat,
        "pat@example.org",
        "viewer",
    )
    assert found[2:] == [None, None]

    async def ambiguous(kernel: Any) -> None:
        await kernel.member(user_id=backplane_tenant.user_id, email=backplane_tenant.email)

    with pytest.raises(ValueError, match="not both or neither"):
        run_in_tenant(backplane_client, backplane_tenant, ambiguous, plugin="kitchen_sink")

    async def malformed(kernel: Any) -> None:
        await kernel.member(email="not an address")

    with pytest.raises(ValueError, match="not an email address"):
        run_in_tenant(backplane_client, backplane_tenant, malformed, plugin="kitchen_sink")
