"""A seeded synthetic company for the lead-scoring tests: contacts with a company size, an
industry and a trial flag, ninety days of activity (opens, clicks, pricing-page visits,
webinars), and conversions drawn from a non-linear mix of both that the tenant's rules (a
marketer's usual points per activity and industry) capture only in part:

- pricing visits matter only for mid-sized companies (50-500 people), and only from the second
  visit on (an interaction and a threshold: the rules give points for every visit of anyone);
- a webinar matters for SaaS companies only; retail rarely converts whatever it does;
- opens and clicks, which the rules reward, barely matter.

Contacts and events are written straight into the tables (``run_in_tenant``: thousands of rows
in a second); rules and attribute definitions go through the API like a tenant's would.
"""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from marketing_helpers import ATTRIBUTES, BASE
from sqlalchemy import insert

from backplane.testing import SeededTenant, run_in_tenant
from backplane_marketing.models import Contact, ContactEvent

INDUSTRIES = ["saas", "retail", "manufacturing", "finance"]
RULES = [
    {"kind": "event", "key": "opened", "points": 2, "half_life_days": 30},
    {"kind": "event", "key": "clicked", "points": 5, "half_life_days": 30},
    {"kind": "event", "key": "visited_pricing", "points": 10, "half_life_days": 14},
    {"kind": "event", "key": "webinar", "points": 15},
    {"kind": "attribute", "key": "industry", "value": "saas", "points": 10},
]


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p < limit:
            return k
        k += 1


def conversion_probability(attributes: dict[str, Any], counts: dict[str, int]) -> float:
    mid_sized = 50 <= attributes["company_size"] <= 500
    logit = -3.0
    logit += 4.0 * (counts["visited_pricing"] >= 2 and mid_sized)
    logit += 3.0 * (counts["webinar"] > 0 and attributes["industry"] == "saas")
    logit += 1.0 * attributes["trial"]
    logit -= 2.5 * (attributes["industry"] == "retail")
    logit += 0.05 * counts["opened"]
    return 1 / (1 + math.exp(-logit))


def company(
    size: int, seed: int, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The contacts' rows and their events' rows (conversions included)."""
    rng = random.Random(seed)
    contacts: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for n in range(size):
        contact_id = uuid.UUID(int=rng.getrandbits(128), version=4)  # seeded: a fixed order
        attributes = {
            "company_size": round(math.exp(rng.gauss(4.6, 1.3))),
            "industry": rng.choice(INDUSTRIES),
            "trial": rng.random() < 0.3,
        }
        contacts.append(
            {
                "id": contact_id,
                "email": f"lead{n}@company{n % 97}.example",
                "name": f"Lead {n}",
                "attributes": attributes,
                "created_at": now - timedelta(days=120),
            }
        )
        counts = {
            "opened": _poisson(rng, 3.0),
            "clicked": _poisson(rng, 1.0),
            "visited_pricing": _poisson(rng, 1.0),
            "webinar": int(rng.random() < 0.25),
        }
        for kind, count in counts.items():
            for _ in range(count):
                at = now - timedelta(days=rng.uniform(1, 90))
                events.append(
                    {
                        "id": uuid.uuid4(),
                        "contact_id": contact_id,
                        "type": kind,
                        "data": {},
                        "occurred_at": at,
                    }
                )
        if rng.random() < conversion_probability(attributes, counts):
            events.append(
                {
                    "id": uuid.uuid4(),
                    "contact_id": contact_id,
                    "type": "converted",
                    "data": {},
                    "occurred_at": now - timedelta(hours=12),
                }
            )
    return contacts, events


def seed_company(
    client: TestClient[Litestar], app: Any, tenant: SeededTenant, size: int = 1500, seed: int = 7
) -> list[dict[str, Any]]:
    """Definitions and rules through the API, contacts and activity into the tables; the
    contacts' rows."""
    for key, kind, extra in (
        ("company_size", "number", {}),
        ("industry", "string", {"choices": INDUSTRIES}),
        ("trial", "boolean", {}),
    ):
        made = client.post(ATTRIBUTES, json={"key": key, "type": kind, **extra})
        assert made.status_code == 201, made.text
    for rule in RULES:
        made = client.post(f"{BASE}/scoring/rules", json=rule)
        assert made.status_code == 201, made.text
    contacts, events = company(size, seed, datetime.now(UTC))

    async def write(kernel: Any) -> None:
        tenant_rows = [{**row, "tenant_id": kernel.tenant_id} for row in contacts]
        await kernel.db.execute(insert(Contact), tenant_rows)
        for start in range(0, len(events), 5000):
            chunk = [{**row, "tenant_id": kernel.tenant_id} for row in events[start : start + 5000]]
            await kernel.db.execute(insert(ContactEvent), chunk)

    run_in_tenant(app, tenant, write, plugin="marketing")
    return contacts
