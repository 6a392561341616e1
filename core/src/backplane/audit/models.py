"""The audit tables: one append-only row per security-relevant action, and each tenant's
chain head.

Rows are never updated or deleted while their tenant exists (a database trigger refuses it;
see the ``core_0012`` migration); each carries the hash of the tenant's previous row, so that
``backplane audit verify`` notices a row changed or removed behind the database's back. The
head row holds the tenant's last sequence number and hash: writers lock it, which serialises
a tenant's chain, and it tells a removed last row from a chain that simply ends there.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKeyConstraint,
    Index,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane.db.base import Base
from backplane.db.tenancy import TenantScoped

EVENTS_TABLE = "backplane_audit_events"
HEADS_TABLE = "backplane_audit_heads"


class AuditEvent(TenantScoped, Base):
    """One audited action of a tenant; ``seq`` counts the tenant's rows from 1."""

    __tablename__ = EVENTS_TABLE
    __table_args__ = (
        UniqueConstraint("tenant_id", "seq"),
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
        Index("ix_backplane_audit_events_tenant_action", "tenant_id", "action", "seq"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor_kind: Mapped[str] = mapped_column(String(32))
    """``user``, ``api_key``, ``operator`` (a CLI command), ``system`` (the kernel's own
    jobs), or the name of the plugin auth backend that admitted the caller."""
    actor_id: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    plugin: Mapped[str] = mapped_column(String(63))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(TenantScoped, Base):
    """The end of a tenant's chain: its last ``seq`` and ``hash`` (0 and the genesis hash
    before the first row)."""

    __tablename__ = HEADS_TABLE
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
    )

    # The mixin's tenant_id, made the primary key: one head per tenant.
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
