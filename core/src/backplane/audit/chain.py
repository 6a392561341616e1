"""The hash chain: how a row's hash is computed, and appending a row to its tenant's chain.

A row's hash is the SHA-256 of a canonical msgspec JSON encoding of its fields (a fixed-order
array, dictionary keys sorted, the time as UTC text to the microsecond) and of the previous
row's hash, so changing, removing or reordering rows breaks every later link. Appending locks
the tenant's head row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the insert takes the
database's write lock) until the caller's transaction ends: concurrent writers of one tenant
take turns, and a rolled-back action leaves neither a row nor a moved head.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Table, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.audit.actor import Actor
from backplane.audit.models import AuditEvent, AuditHead

GENESIS = "0" * 64
"""The ``prev_hash`` of a tenant's first row."""

_EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]
_HEADS: Table = AuditHead.__table__  # type: ignore[assignment]


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A recorded row, as it is stored and hashed."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    seq: int
    created_at: datetime
    actor_kind: str
    actor_id: str | None
    address: str | None
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    plugin: str
    prev_hash: str
    hash: str


class _Hashed(msgspec.Struct, array_like=True):
    """The fields a hash covers, in this order (an array: no field names to disagree on)."""

    tenant_id: str
    seq: int
    created_at: str
    actor_kind: str
    actor_id: str | None
    address: str | None
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    plugin: str
    prev_hash: str


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_hash(row: Any) -> str:
    """The hash ``row`` (an :class:`AuditEntry`, an :class:`AuditEvent` or a result row with
    the same fields) must carry, from its content and its ``prev_hash``."""
    hashed = _Hashed(
        tenant_id=str(row.tenant_id),
        seq=row.seq,
        created_at=utc_text(row.created_at),
        actor_kind=row.actor_kind,
        actor_id=row.actor_id,
        address=row.address,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        details=row.details,
        plugin=row.plugin,
        prev_hash=row.prev_hash,
    )
    return hashlib.sha256(msgspec.json.encode(hashed, order="sorted")).hexdigest()


async def append(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    action: str,
    actor: Actor,
    target_type: str | None,
    target_id: str | None,
    details: dict[str, Any],
    plugin: str,
) -> AuditEntry:
    """Add a row at the end of ``tenant_id``'s chain in ``session``'s transaction (nothing is
    committed here). Statements go to the session's connection, past the ORM's tenant filter:
    the caller (:func:`backplane.audit.record.record`) has checked the tenant."""
    connection = await session.connection()
    postgres = connection.dialect.name == "postgresql"
    dialect_insert = pg_insert if postgres else sqlite_insert
    await connection.execute(
        dialect_insert(_HEADS)
        .values(tenant_id=tenant_id, seq=0, hash=GENESIS)
        .on_conflict_do_nothing(index_elements=["tenant_id"])
    )
    head = (
        await connection.execute(
            select(_HEADS.c.seq, _HEADS.c.hash)
            .where(_HEADS.c.tenant_id == tenant_id)
            .with_for_update()
        )
    ).one()
    entry = AuditEntry(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        seq=head.seq + 1,
        created_at=datetime.now(UTC),
        actor_kind=actor.kind,
        actor_id=actor.id,
        address=actor.address,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details,
        plugin=plugin,
        prev_hash=head.hash,
        hash="",
    )
    entry = msgspec.structs.replace(entry, hash=row_hash(entry))
    await connection.execute(insert(_EVENTS).values(msgspec.structs.asdict(entry)))
    await connection.execute(
        update(_HEADS).where(_HEADS.c.tenant_id == tenant_id).values(seq=entry.seq, hash=entry.hash)
    )
    return entry
