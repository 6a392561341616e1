"""The lead-score trainer (``register_trainers``): a tenant's conversions learnt from its
contacts' attributes and activity before they converted.

``POST /api/models/lead_score/train`` runs it through the kernel's training rails. Every
contact is a row labelled 1 if it ever had a ``converted`` event; its features are those of
:mod:`~backplane_marketing.scoring.features` as of its first conversion (or now). The tenant's
rules score at the same moment is returned as the trainer's baseline: the kernel measures both on
the same held-out contacts and never promotes a version whose AUC does not beat the rules'.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from backplane_marketing.models import Contact
from backplane_marketing.scoring.activity import activity, conversions
from backplane_marketing.scoring.features import current_spec, matrix
from backplane_marketing.scoring.models import ScoreRule, ScoringSpec
from backplane_marketing.scoring.rules import points_for

MODEL = "lead_score"
"""The tenant model the trainer makes versions of (served as its ``production`` alias)."""
TRAINER = "marketing.lead_score"


async def lead_score_data(kernel: Any) -> tuple[Any, Any, Any, Any]:
    """``fit(kernel)``: features, labels, an unfitted estimator and the rules' scores.
    ValueError when the tenant has no conversions, or only conversions."""
    from sklearn.ensemble import GradientBoostingClassifier

    db = kernel.db
    now = datetime.now(UTC)
    contacts = [
        (row.id, row.attributes)
        for row in await db.execute(
            select(Contact.id, Contact.attributes).order_by(Contact.created_at, Contact.id)
        )
    ]
    converted = await conversions(db)
    labels = np.asarray([1 if contact in converted else 0 for contact, _ in contacts])
    if labels.sum() == 0 or labels.sum() == len(labels):
        raise ValueError(
            f"the lead-score trainer needs converted and unconverted contacts: "
            f"{int(labels.sum())} of {len(labels)} converted (record conversions with "
            f"POST /api/marketing/events, type 'converted')"
        )
    buckets = await activity(db, None, now=now, before_conversion=True)
    spec = await current_spec(db)
    latest = await db.scalar(select(ScoringSpec).order_by(ScoringSpec.created_at.desc()).limit(1))
    if latest is None or latest.spec != spec:
        db.add(ScoringSpec(tenant_id=kernel.tenant_id, spec=spec, created_at=now))
        await db.flush()
    rules = list(await db.scalars(select(ScoreRule).order_by(ScoreRule.created_at, ScoreRule.id)))
    points = points_for(rules, contacts, buckets)
    baseline = np.asarray([points[contact][0] for contact, _ in contacts], dtype=np.float64)
    estimator = GradientBoostingClassifier(
        n_estimators=100, max_depth=3, learning_rate=0.1, subsample=0.9, random_state=0
    )
    return matrix(spec, contacts, buckets), labels, estimator, baseline


def marketing_trainers() -> list[Any]:
    from backplane import Trainer

    return [
        Trainer(
            name=TRAINER,
            model=MODEL,
            fit=lead_score_data,
            metric="auc",
            description="Conversion from a contact's attributes and activity (gradient-boosted "
            "trees); must beat the tenant's scoring rules on held-out contacts",
        )
    ]
