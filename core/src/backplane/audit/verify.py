"""Checking the chains: what ``backplane audit verify`` runs.

Each tenant's rows are read in ``seq`` order, a batch at a time, and every link is checked: the
numbering has no gap (a removed row), each row's hash matches its content (an edited row),
each ``prev_hash`` is the hash of the row before (rows removed, reordered or forged with a
recomputed hash), and the head agrees with the last row (rows removed at the end). The first
broken link of a tenant is reported; later rows of that tenant are not trusted either.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.audit.chain import GENESIS, row_hash
from backplane.audit.models import AuditEvent, AuditHead

BATCH = 1000
Problem = Literal["edited", "deleted", "out_of_chain", "head"]


class ChainBreak(msgspec.Struct, frozen=True, kw_only=True):
    """The first broken link of a tenant's chain."""

    tenant_id: uuid.UUID
    seq: int | None
    row_id: uuid.UUID | None
    problem: Problem
    message: str


class ChainReport(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: uuid.UUID
    rows: int
    broken: ChainBreak | None = None


async def rows_of(
    session: AsyncSession, tenant_id: uuid.UUID, *, after: int = 0, batch: int = BATCH
) -> AsyncIterator[Sequence[AuditEvent]]:
    """The tenant's rows in ``seq`` order, in batches (keyset paging: memory stays bounded)."""
    while True:
        rows = (
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.tenant_id == tenant_id, AuditEvent.seq > after)
                .order_by(AuditEvent.seq)
                .limit(batch)
            )
        ).all()
        if not rows:
            return
        yield rows
        after = rows[-1].seq
        session.expunge_all()


def _check(row: AuditEvent, expected_seq: int, previous: str) -> tuple[Problem, str] | None:
    where = f"row {row.seq} ({row.id}, {row.action})"
    if row.seq > expected_seq:
        missing = (
            f"row {expected_seq}"
            if row.seq == expected_seq + 1
            else f"rows {expected_seq}-{row.seq - 1}"
        )
        return "deleted", f"{missing} missing before {where}"
    if row_hash(row) != row.hash:
        return "edited", f"{where} was changed: its hash does not match its content"
    if row.prev_hash != previous:
        return "out_of_chain", (
            f"{where} does not follow the row before it (reordered, replaced or forged)"
        )
    return None


async def verify_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> ChainReport:
    """Check one tenant's chain (``session`` must see its rows: a maintenance session, or one
    bound to the tenant)."""
    expected, previous, count = 1, GENESIS, 0
    async for rows in rows_of(session, tenant_id):
        for row in rows:
            problem = _check(row, expected, previous)
            if problem is not None:
                broken = ChainBreak(
                    tenant_id=tenant_id,
                    seq=row.seq,
                    row_id=row.id,
                    problem=problem[0],
                    message=problem[1],
                )
                return ChainReport(tenant_id=tenant_id, rows=count, broken=broken)
            expected, previous, count = row.seq + 1, row.hash, count + 1
    head = await session.scalar(select(AuditHead).where(AuditHead.tenant_id == tenant_id))
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if (head_seq, head_hash) != (expected - 1, previous):
        kind: Problem
        if head_seq > expected - 1:
            message = (
                f"the chain ends at row {expected - 1} but {head_seq} were written: "
                "the last rows were removed"
            )
            kind = "deleted"
        else:
            message = (
                f"the chain head (row {head_seq}) does not match the last row ({expected - 1})"
            )
            kind = "head"
        broken = ChainBreak(
            tenant_id=tenant_id, seq=expected, row_id=None, problem=kind, message=message
        )
        return ChainReport(tenant_id=tenant_id, rows=count, broken=broken)
    return ChainReport(tenant_id=tenant_id, rows=count)


async def audited_tenants(session: AsyncSession) -> list[uuid.UUID]:
    """Every tenant with a chain (a head or rows), for a session that sees every tenant."""
    heads = select(AuditHead.tenant_id)
    rows = select(AuditEvent.tenant_id).distinct()
    found: set[Any] = set(await session.scalars(heads)) | set(await session.scalars(rows))
    return sorted(found, key=str)
