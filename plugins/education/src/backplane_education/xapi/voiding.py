"""Voiding (xAPI 1.0.3 Part Two 2.3.2): a voiding statement's target is stored voided, whether
it arrives before or after the voiding statement, and a voiding statement cannot be voided."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_education.xapi.models import XapiStatement
from backplane_education.xapi.shape import Keys
from backplane_education.xapi.validation import VOIDED, bad


async def check_targets(
    db: AsyncSession, tenant_id: uuid.UUID, prepared: list[tuple[dict[str, Any], Keys]]
) -> None:
    """A voiding statement may not target a voiding statement (400)."""
    targets = {uuid.UUID(keys.voids) for _, keys in prepared if keys.voids}
    if not targets:
        return
    in_batch = {s["id"]: keys for s, keys in prepared}
    for target in targets:
        if (found := in_batch.get(str(target))) and found.voids:
            raise bad(f"statement {target} is a voiding statement and cannot be voided")
    voiding = await db.scalar(
        select(XapiStatement.statement_id)
        .where(XapiStatement.tenant_id == tenant_id, XapiStatement.statement_id.in_(targets))
        .where(XapiStatement.verb == VOIDED)
        .limit(1)
    )
    if voiding is not None:
        raise bad(f"statement {voiding} is a voiding statement and cannot be voided")


async def apply(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    keys: list[Keys],
    inserted: list[str],
    *,
    earlier: bool,
) -> None:
    """Mark targets of new voiding statements voided, and (``earlier``) new statements an
    earlier voiding statement already targeted."""
    targets = [uuid.UUID(k.voids) for k in keys if k.voids]
    if targets:
        await db.execute(
            update(XapiStatement)
            .where(XapiStatement.tenant_id == tenant_id, XapiStatement.statement_id.in_(targets))
            .where(XapiStatement.verb != VOIDED)
            .values(voided=True)
            .execution_options(synchronize_session=False)
        )
    if earlier and any(not k.voids for k in keys):
        # built only here: on PostgreSQL (``earlier`` false) the batch statement did this, and
        # building the expression for a 100-statement batch cost as much CPU as the insert's
        new_ids = [uuid.UUID(i) for i in inserted]
        voided_before = select(XapiStatement.voids).where(
            XapiStatement.tenant_id == tenant_id, XapiStatement.voids.in_(new_ids)
        )
        await db.execute(
            update(XapiStatement)
            .where(XapiStatement.tenant_id == tenant_id)
            .where(XapiStatement.statement_id.in_(voided_before), XapiStatement.verb != VOIDED)
            .values(voided=True)
            .execution_options(synchronize_session=False)
        )
