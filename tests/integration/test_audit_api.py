"""``GET /api/audit``: a tenant's owners and admins read its trail only, newest first,
filtered and keyset-paged; others get 403, bad filters 400 with a message."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from backplane.audit.record import record
from backplane.plugins import PluginSet
from backplane.testing import SeededTenant
from tests.audit_helpers import trail
from tests.db_helpers import admin_session

URL = "/api/audit"


def key(client: TestClient[Litestar], tenant: SeededTenant, role: str) -> dict[str, str]:
    made = client.post("/api/apikeys", json={"name": role, "role": role}, headers=tenant.headers)
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}"}


def pages(client: TestClient[Litestar], headers: dict[str, str], **params: Any) -> list[Any]:
    """Every page of the trail, following ``next_before``."""
    found: list[Any] = []
    cursor = None
    while True:
        query = {**params, **({"before": cursor} if cursor else {})}
        page = client.get(URL, params=query, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        found.extend(body["items"])
        cursor = body["next_before"]
        if cursor is None:
            return found


def add_rows(plugins: PluginSet, tenant: SeededTenant, count: int) -> None:
    async def work() -> None:
        async with admin_session(plugins.settings) as session, session.begin():
            for n in range(count):
                await record(
                    session, "data.exported", tenant_id=tenant.tenant_id, target=("job", n)
                )

    asyncio.run(work())


def test_admins_read_their_own_tenants_trail_only(
    dual_client: TestClient[Litestar],
    dual_plugins: PluginSet,
    dual_tenant_a: SeededTenant,
    dual_tenant_b: SeededTenant,
) -> None:
    a_admin = key(dual_client, dual_tenant_a, "admin")
    b_admin = key(dual_client, dual_tenant_b, "admin")
    a_rows = trail(dual_plugins.settings, dual_tenant_a.tenant_id)
    shown = dual_client.get(URL, headers=a_admin).json()["items"]
    assert [r["seq"] for r in shown] == sorted((r.seq for r in a_rows), reverse=True)
    assert {r["id"] for r in shown} == {str(r.id) for r in a_rows}

    a_ids = {str(r.id) for r in a_rows}
    b_sees = pages(dual_client, b_admin, limit=1)
    assert b_sees
    assert not a_ids & {r["id"] for r in b_sees}
    assert {r["id"] for r in b_sees} == {
        str(r.id) for r in trail(dual_plugins.settings, dual_tenant_b.tenant_id)
    }
    # Naming A's targets or actors finds nothing from B either.
    for params in (
        {"target_id": str(dual_tenant_a.tenant_id)},
        {"actor": dual_tenant_a.api_key_id},
        {"target_id": str(dual_tenant_a.user_id)},
    ):
        assert dual_client.get(URL, params=params, headers=b_admin).json()["items"] == []


def test_members_without_the_permission_get_403_and_strangers_401(
    dual_client: TestClient[Litestar], dual_tenant_a: SeededTenant
) -> None:
    for role in ("member", "viewer"):
        refused = dual_client.get(URL, headers=key(dual_client, dual_tenant_a, role))
        assert refused.status_code == 403
        assert "audit.read" in refused.json()["detail"]
    assert dual_client.get(URL).status_code == 401


def test_pages_are_keyset_newest_first_and_filters_narrow(
    dual_client: TestClient[Litestar], dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    a = dual_tenant_a
    add_rows(dual_plugins, a, 7)
    everything = pages(dual_client, a.headers)
    in_threes = pages(dual_client, a.headers, limit=3)
    assert [r["seq"] for r in in_threes] == [r["seq"] for r in everything]
    assert [r["seq"] for r in everything] == sorted((r["seq"] for r in everything), reverse=True)

    exported = pages(dual_client, a.headers, action="data.exported", limit=2)
    assert [r["target_id"] for r in exported] == [str(n) for n in reversed(range(7))]
    assert {r["action"] for r in pages(dual_client, a.headers, action="data.*")} == {
        "data.exported"
    }
    one = dual_client.get(
        URL, params={"target_type": "job", "target_id": "3"}, headers=a.headers
    ).json()["items"]
    assert [(r["action"], r["target_id"]) for r in one] == [("data.exported", "3")]
    by_system = pages(dual_client, a.headers, actor_kind="system")
    assert {r["action"] for r in by_system} >= {"data.exported"}

    now = datetime.now(UTC)
    window = {"since": (now - timedelta(hours=1)).isoformat(), "until": now.isoformat()}
    assert len(pages(dual_client, a.headers, **window)) == len(everything)
    later = {"since": (now + timedelta(hours=1)).isoformat()}
    assert pages(dual_client, a.headers, **later) == []


def test_bad_filters_answer_400_with_a_message(
    dual_client: TestClient[Litestar], dual_tenant_a: SeededTenant
) -> None:
    now = datetime.now(UTC)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"limit": 0}, "limit must be 1-500"),
        ({"limit": 501}, "limit must be 1-500"),
        ({"limit": "ten"}, "limit"),
        ({"before": 0}, "before must be a positive"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-12-01T10:00:00"}, "must name its time zone"),
        ({"since": now.isoformat(), "until": now.isoformat()}, "since must be earlier"),
        ({"action": "Drop Table"}, "is not an action code"),
        ({"action": "*"}, "is not an action code"),
        ({"action": "a.b.%.*"}, "is not like 'auth.*'"),
        ({"actor": "x" * 201}, "actor must be 1-200 characters"),
    ]
    for params, message in cases:
        answer = dual_client.get(URL, params=params, headers=dual_tenant_a.headers)
        assert answer.status_code == 400, (params, answer.text)
        assert message in answer.text, (params, answer.text)
