"""Scores kept current: :func:`rescore_contacts` computes the rules' points of the given
contacts and, when the tenant has a promoted lead-score model (``production`` alias of
``lead_score``), its conversion probability through the kernel's model runtime, and upserts
``marketing_scores``. Event intake calls it for the contact concerned; ``POST
/scoring/recompute`` queues the task :func:`rescore` for everyone."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from backplane import QuotaExceeded
from backplane_marketing.dialect import insert_for
from backplane_marketing.models import Contact
from backplane_marketing.scoring.activity import activity
from backplane_marketing.scoring.features import matrix, width
from backplane_marketing.scoring.models import ContactScore, ScoreRule, ScoringSpec
from backplane_marketing.scoring.rules import points_for
from backplane_marketing.scoring.trainer import MODEL

BATCH = 500
"""Contacts scored per statement (and per model call) by the task :func:`rescore`."""


async def _model_probabilities(
    kernel: Any, contacts: Sequence[tuple[uuid.UUID, dict[str, Any]]], buckets: Any
) -> Any:
    """The production model's conversion probabilities, or None when the tenant has no
    usable model (none promoted, its input no longer matching the kept layout, quota spent):
    the scores then fall back to the rules."""
    db = kernel.db
    spec = await db.scalar(select(ScoringSpec).order_by(ScoringSpec.created_at.desc()).limit(1))
    if spec is None or not width(spec.spec):
        return None
    features = matrix(spec.spec, contacts, buckets)
    with contextlib.suppress(LookupError, ValueError, QuotaExceeded):
        outputs = await kernel.models.infer(MODEL, {"X": features}, version="production")
        probabilities = np.asarray(outputs.get("probabilities"), dtype=np.float64)
        if probabilities.shape == (len(contacts), 2):
            return probabilities[:, 1]
    return None


async def rescore_contacts(
    kernel: Any, contact_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ContactScore]:
    """Recompute and store the scores of ``contact_ids`` (unknown ids are skipped)."""
    db, now = kernel.db, datetime.now(UTC)
    contacts = [
        (row.id, row.attributes or {})
        for row in await db.execute(
            select(Contact.id, Contact.attributes).where(Contact.id.in_(list(contact_ids)))
        )
    ]
    if not contacts:
        return {}
    rules = list(await db.scalars(select(ScoreRule).order_by(ScoreRule.created_at, ScoreRule.id)))
    buckets = await activity(db, [c for c, _ in contacts], now=now)
    points = points_for(rules, contacts, buckets)
    probabilities = await _model_probabilities(kernel, contacts, buckets)
    values = []
    for index, (contact, _) in enumerate(contacts):
        total, reasons = points[contact]
        if probabilities is None:
            score, source = min(max(total, 0.0), 100.0), "rules"
        else:
            score, source = round(100 * float(probabilities[index]), 3), "model"
            reasons = [
                {
                    "rule": None,
                    "reason": f"{MODEL} model: conversion probability "
                    f"{float(probabilities[index]):.3f}",
                    "points": None,
                },
                *reasons,
            ]
        values.append(
            {
                "tenant_id": kernel.tenant_id,
                "contact_id": contact,
                "score": score,
                "rules_points": round(total, 3),
                "source": source,
                "model_version": "production" if source == "model" else None,
                "reasons": reasons,
                "updated_at": now,
            }
        )
    before = dict(
        (
            await db.execute(
                select(ContactScore.contact_id, ContactScore.score).where(
                    ContactScore.contact_id.in_([c for c, _ in contacts])
                )
            )
        )
        .tuples()
        .all()
    )
    statement = insert_for(db, ContactScore)
    excluded = statement.excluded
    await db.execute(
        statement.on_conflict_do_update(
            index_elements=["contact_id"],
            set_={
                k: excluded[k]
                for k in (
                    "score",
                    "rules_points",
                    "source",
                    "model_version",
                    "reasons",
                    "updated_at",
                )
            },
        ),
        values,
    )
    rows = await db.scalars(
        select(ContactScore)
        .where(ContactScore.contact_id.in_([c for c, _ in contacts]))
        .execution_options(populate_existing=True)
    )
    scores = {row.contact_id: row for row in rows}
    from backplane_marketing.automations.engine import kick, scores_changed

    # A score that crossed an automation's threshold starts it (in this transaction).
    await scores_changed(db, {c: (before.get(c), row.score) for c, row in scores.items()})
    await kick(kernel)
    return scores


async def rescore(kernel: Any) -> int:
    """Task ``marketing.rescore``: every contact of the tenant, in batches; how many."""
    after: uuid.UUID | None = None
    done = 0
    while True:
        query = select(Contact.id).order_by(Contact.id).limit(BATCH)
        if after is not None:
            query = query.where(Contact.id > after)
        ids = list(await kernel.db.scalars(query))
        if not ids:
            return done
        await rescore_contacts(kernel, ids)
        done, after = done + len(ids), ids[-1]
