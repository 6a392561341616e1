"""Automatic promotion: what a trainer calls once a new version is registered.

The decision (:func:`backplane.inference.rollout.should_promote`) is pure, so it is tested on
its own; this moves the alias it decides on, as one recorded ``promote`` change (alias history
and the audit trail ``model.alias_changed``), in the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from backplane.inference.aliases import PRODUCTION, set_alias
from backplane.inference.rollout import AliasTarget, PromotionDecision, should_promote
from backplane.inference.runtime import ModelCatalog


async def promote_if_better(
    db: AsyncSession,
    catalog: ModelCatalog,
    tenant_id: uuid.UUID,
    name: str,
    candidate_version: str,
    candidate_metrics: Mapping[str, float],
    production_metrics: Mapping[str, float] | None,
    *,
    metric: str,
    higher_is_better: bool,
    margin: float,
    alias: str = PRODUCTION,
) -> PromotionDecision:
    """:func:`should_promote`, and when it says so, move ``alias`` to ``candidate_version``
    (recorded as a ``promote`` change). ``production_metrics`` are those of the version the
    alias points at now (None when it does not exist)."""
    decision = should_promote(
        candidate_metrics, production_metrics, metric, higher_is_better, margin
    )
    if decision.promote:
        await set_alias(
            db,
            catalog,
            tenant_id,
            name,
            alias,
            AliasTarget(version=candidate_version),
            action="promote",
        )
    return decision
