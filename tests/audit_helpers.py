"""Reading the audit trail from tests, as an operator would (a maintenance session)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import select

from backplane.audit.models import AuditEvent
from backplane.settings import Settings
from tests.db_helpers import admin_session


def trail(
    settings: Settings, tenant_id: uuid.UUID | None = None, action: str | None = None
) -> list[AuditEvent]:
    """The audit rows of ``tenant_id`` (every tenant's if None), oldest first; only ``action``'s
    if given."""

    async def read() -> list[AuditEvent]:
        async with admin_session(settings, "test reads the audit trail") as session:
            query = select(AuditEvent).order_by(AuditEvent.tenant_id, AuditEvent.seq)
            if tenant_id is not None:
                query = query.where(AuditEvent.tenant_id == tenant_id)
            if action is not None:
                query = query.where(AuditEvent.action == action)
            return list(await session.scalars(query))

    return asyncio.run(read())


def only(settings: Settings, tenant_id: uuid.UUID, action: str) -> AuditEvent:
    """The one row of ``action`` in ``tenant_id``'s trail (fails if there are none or several)."""
    rows = trail(settings, tenant_id, action)
    assert len(rows) == 1, [(r.action, r.target_id) for r in trail(settings, tenant_id)]
    return rows[0]


def assert_row(
    row: AuditEvent,
    *,
    tenant_id: uuid.UUID,
    actor: tuple[str, Any],
    target: tuple[str, Any] | None,
) -> None:
    """The row's tenant, actor ``(kind, id)`` and target ``(type, id)``."""
    assert row.tenant_id == tenant_id
    assert (row.actor_kind, row.actor_id) == (actor[0], None if actor[1] is None else str(actor[1]))
    if target is None:
        assert (row.target_type, row.target_id) == (None, None)
    else:
        assert (row.target_type, row.target_id) == (target[0], str(target[1]))
