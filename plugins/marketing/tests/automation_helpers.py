"""Helpers of the automation tests: defining a sequence, advancing due runs as the tick would
(in the tenant, through the plugin's kernel view), a contact's progress."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from marketing_helpers import BASE, CONTACTS

from backplane.testing import run_in_tenant, run_tasks

AUTOMATIONS = f"{BASE}/automations"
QUIET_SCHEDULER = {"BACKPLANE_TASKS__SCHEDULER_INTERVAL_S": "3600"}
"""The periodic tick runs when a test says (``tick``), not at a boundary mid-test (a wait's own
wake-up still runs at its end)."""


def make_automation(client: TestClient[Litestar], **body: Any) -> dict[str, Any]:
    made = client.post(AUTOMATIONS, json={"status": "active", **body})
    assert made.status_code == 201, made.text
    out: dict[str, Any] = made.json()
    return out


def tick(client: TestClient[Litestar], tenant: Any) -> None:
    """Run ``marketing.automation_tick`` now, then every due task it queued."""
    from backplane_marketing.automations.engine import automation_tick

    run_in_tenant(client, tenant, automation_tick, plugin="marketing")
    run_tasks(client, timeout=30)


def progress(client: TestClient[Litestar], contact_id: str) -> list[dict[str, Any]]:
    found = client.get(f"{CONTACTS}/{contact_id}/automations")
    assert found.status_code == 200, found.text
    runs: list[dict[str, Any]] = found.json()
    return runs


def tags_of(client: TestClient[Litestar], contact_id: str) -> list[str]:
    found = client.get(f"{CONTACTS}/{contact_id}")
    assert found.status_code == 200, found.text
    return list(found.json()["tags"])


def funnel(client: TestClient[Litestar], automation_id: str) -> dict[str, Any]:
    found = client.get(f"{AUTOMATIONS}/{automation_id}/funnel")
    assert found.status_code == 200, found.text
    out: dict[str, Any] = found.json()
    return out
