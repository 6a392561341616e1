"""Scoring routes: rules (``/api/marketing/scoring/rules``), event intake by address
(``POST /api/marketing/events``, rescoring that contact in the same transaction), a contact's
score with its reasons, and a recompute of every score as a task."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import Kernel, requires
from backplane_marketing.automations.engine import enrol, kick
from backplane_marketing.contacts import add_event, email_or_400, find_contact
from backplane_marketing.errors import ERROR_HANDLERS, TAGS, MarketingError
from backplane_marketing.models import Contact
from backplane_marketing.plugin import ADMIN, READ, WRITE
from backplane_marketing.schemas import EventOut
from backplane_marketing.scoring.models import ContactScore, ScoreRule
from backplane_marketing.scoring.schemas import (
    ContactEventIn,
    RecomputeOut,
    RuleIn,
    RuleOut,
    ScoreOut,
)
from backplane_marketing.scoring.service import rescore_contacts

MAX_RULES = 200
"""Rules per tenant (each one is evaluated for every contact scored)."""


def _rule_out(rule: ScoreRule) -> RuleOut:
    return RuleOut(
        id=rule.id,
        kind=rule.kind,
        key=rule.key,
        value=rule.value,
        points=rule.points,
        half_life_days=rule.half_life_days,
        created_at=rule.created_at,
    )


def _score_out(score: ContactScore) -> ScoreOut:
    return ScoreOut(
        contact_id=score.contact_id,
        score=score.score,
        source=score.source,
        rules_points=score.rules_points,
        reasons=score.reasons,
        updated_at=score.updated_at,
    )


class ScoringController(Controller):
    path = "/"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/scoring/rules", guards=[requires(READ)])
    async def list_rules(self, db: NamedDependency[AsyncSession]) -> list[RuleOut]:
        rules = await db.scalars(select(ScoreRule).order_by(ScoreRule.created_at, ScoreRule.id))
        return [_rule_out(rule) for rule in rules]

    @post("/scoring/rules", guards=[requires(ADMIN)])
    async def create_rule(self, data: JSONBody[RuleIn], kernel: NamedDependency[Kernel]) -> RuleOut:
        """A new rule; scores change with the next rescoring (``POST /scoring/recompute``)."""
        if data.kind == "attribute" and data.half_life_days is not None:
            raise MarketingError("half_life_days applies to event rules only", 422)
        if data.kind == "event" and data.value is not None:
            raise MarketingError("value applies to attribute rules only", 422)
        count = len(list(await kernel.db.scalars(select(ScoreRule.id))))
        if count >= MAX_RULES:
            raise MarketingError(f"a tenant has at most {MAX_RULES} scoring rules", 409)
        rule = ScoreRule(
            tenant_id=kernel.tenant_id,
            kind=data.kind,
            key=data.key,
            value=data.value,
            points=data.points,
            half_life_days=data.half_life_days,
            created_at=datetime.now(UTC),
        )
        kernel.db.add(rule)
        await kernel.db.flush()
        await kernel.audit.record("marketing.score_rule_created", target=("score_rule", rule.id))
        return _rule_out(rule)

    @delete("/scoring/rules/{rule_id:uuid}", guards=[requires(ADMIN)])
    async def delete_rule(
        self, rule_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        rule = await kernel.db.get(ScoreRule, rule_id)
        if rule is None:
            raise MarketingError(f"no scoring rule {rule_id}", 404)
        await kernel.db.delete(rule)
        await kernel.audit.record("marketing.score_rule_deleted", target=("score_rule", rule_id))

    @post("/scoring/recompute", guards=[requires(ADMIN)], status_code=202)
    async def recompute(self, kernel: NamedDependency[Kernel]) -> RecomputeOut:
        """Rescore every contact in a background task (after new rules or a new model)."""
        await kernel.tasks.enqueue("marketing.rescore")
        return RecomputeOut(queued=True)

    @get("/contacts/{contact_id:uuid}/score", guards=[requires(READ)])
    async def contact_score(
        self, contact_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> ScoreOut:
        """The contact's score and reasons (computed now if it has none yet)."""
        await find_contact(kernel.db, contact_id)
        score = await kernel.db.get(ContactScore, contact_id)
        if score is None:
            score = (await rescore_contacts(kernel, [contact_id]))[contact_id]
        return _score_out(score)

    @post("/events", guards=[requires(WRITE)])
    async def intake(
        self, data: JSONBody[ContactEventIn], kernel: NamedDependency[Kernel]
    ) -> EventOut:
        """Record an activity of the contact with ``email`` (404 when there is none), rescore
        that contact and start the automations triggered by this event ``type`` (a custom
        event)."""
        email = email_or_400(data.email)
        contact_id = await kernel.db.scalar(select(Contact.id).where(Contact.email == email))
        if contact_id is None:
            raise MarketingError(f"no contact with email {email}", 404)
        at = data.occurred_at or datetime.now(UTC)
        if at.tzinfo is None:
            raise MarketingError("occurred_at needs a time zone (e.g. 2026-12-05T10:00:00Z)")
        event = add_event(kernel.db, contact_id, data.type, data.data, at.astimezone(UTC))
        await kernel.db.flush()
        await enrol(kernel.db, contact_id, "event", data.type)
        await rescore_contacts(kernel, [contact_id])
        await kick(kernel)
        return EventOut(
            id=event.id, type=event.type, data=event.data, occurred_at=event.occurred_at
        )
