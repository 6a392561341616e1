"""Removing a deleted tenant's trail: the one way audit rows ever leave the database.

The database refuses to update or delete audit rows (a trigger; see the ``core_0012``
migration) except rows of a tenant that no longer exists, so deleting a tenant's row takes its
trail with it (the foreign key cascades). Tenant deletion that removes a tenant's rows table by
table, before the tenant row itself, calls :func:`erase_tenant_trail` on its maintenance
session: on PostgreSQL the trigger then lets that transaction, and only a role that bypasses
row-level security (the maintenance role, never the application's), delete that tenant's rows.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Table, delete, text
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.audit.models import AuditEvent, AuditHead
from backplane.db.tenancy import MAINTENANCE_KEY, TenantIsolationError

_EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]
_HEADS: Table = AuditHead.__table__  # type: ignore[assignment]

ERASING_SETTING = "backplane.audit_erase"
"""The transaction-local setting naming the tenant whose trail may be deleted (PostgreSQL)."""


async def erase_tenant_trail(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    """Delete every audit row and the chain head of ``tenant_id`` in ``session``'s transaction
    (a maintenance session: kernel code deleting the tenant); the number of rows deleted."""
    if not session.sync_session.info.get(MAINTENANCE_KEY):
        raise TenantIsolationError("only the kernel's maintenance sessions erase audit trails")
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(
            text("SELECT set_config(:name, :tenant, true)"),
            {"name": ERASING_SETTING, "tenant": str(tenant_id)},
        )
    # The head first: on SQLite, a tenant without a head is what lets its rows go.
    await connection.execute(delete(_HEADS).where(AuditHead.tenant_id == tenant_id))
    result = await connection.execute(delete(_EVENTS).where(AuditEvent.tenant_id == tenant_id))
    return int(result.rowcount or 0)
