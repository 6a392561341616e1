"""Demo data for ``backplane demo seed``: attribute definitions, a newsletter list, a dozen
contacts with tags, consent and activity, and a dynamic segment of engaged leads, so that
``make run`` shows the segment counting its members at once; a signup form for the
newsletter (double opt-in) whose public page works at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from backplane_marketing.models import (
    AttributeDefinition,
    Contact,
    ContactEvent,
    ContactTag,
    MailingList,
    Segment,
    Subscription,
)

PEOPLE = [
    ("ada@example.org", "Ada Lovelace", 92, "pro", ["vip"]),
    ("grace@example.org", "Grace Hopper", 81, "pro", ["vip", "beta"]),
    ("alan@example.org", "Alan Turing", 64, "free", ["beta"]),
    ("katherine@example.org", "Katherine Johnson", 77, "free", []),
    ("edsger@example.org", "Edsger Dijkstra", 40, "free", []),
    ("barbara@example.org", "Barbara Liskov", 88, "pro", ["vip"]),
    ("donald@example.org", "Donald Knuth", 55, "free", []),
    ("margaret@example.org", "Margaret Hamilton", 71, "pro", ["beta"]),
    ("john@example.org", "John Backus", 30, "free", []),
    ("frances@example.org", "Frances Allen", 69, "free", []),
]
ENGAGED = {
    "type": "and",
    "all": [
        {"type": "attribute", "key": "score", "op": "gt", "value": 70},
        {"type": "activity", "event": "opened", "within_days": 30},
    ],
}


async def seed(kernel: Any) -> dict[str, str]:
    db = kernel.db
    now = datetime.now(UTC)
    db.add(AttributeDefinition(key="score", type="number", label="Lead score"))
    db.add(AttributeDefinition(key="plan", type="string", label="Plan", choices=["free", "pro"]))
    newsletter = MailingList(name="Newsletter", description="Monthly product news")
    db.add(newsletter)
    await db.flush()
    for n, (email, name, score, plan, tags) in enumerate(PEOPLE):
        contact = Contact(
            email=email,
            name=name,
            attributes={"score": score, "plan": plan},
            consent="granted",
            consent_source="demo signup form",
            consent_at=now - timedelta(days=60),
        )
        db.add(contact)
        await db.flush()
        db.add_all(ContactTag(contact_id=contact.id, tag=t) for t in tags)
        db.add(Subscription(contact_id=contact.id, list_id=newsletter.id, status="subscribed"))
        for days in range(n % 4):
            db.add(
                ContactEvent(
                    contact_id=contact.id,
                    type="opened",
                    data={"campaign": "november-news"},
                    occurred_at=now - timedelta(days=3 + 10 * days),
                )
            )
    db.add(Segment(name="Engaged leads", kind="dynamic", filter=ENGAGED))
    from backplane_marketing.forms.models import Form
    from backplane_marketing.forms.routes import FormIn

    defaults = FormIn(name="newsletter", title="Monthly product news")
    db.add(
        Form(
            name=defaults.name,
            title=defaults.title,
            intro="One email a month about what we shipped. Confirm by the link we send you.",
            fields=[{"name": "full_name", "label": "Your name", "maps_to": "name"}],
            list_ids=[str(newsletter.id)],
            tags=["signup"],
            confirm_subject=defaults.confirm_subject,
            confirm_text=defaults.confirm_text,
        )
    )
    await db.flush()
    return {
        "hint": "GET /api/marketing/segments (the 'Engaged leads' segment counts its members); "
        "GET /api/marketing/forms (the newsletter's signup page is its 'url')"
    }
