"""Webhook tables: endpoints, events and deliveries. All tenant-owned, with RLS on PostgreSQL.

The delivery rows are the durable queue of the webhook system: a delivery is ``pending`` with a
``next_attempt_at`` until it has ``succeeded`` or exhausted its attempts (``failed``), so a
process that dies mid-delivery loses nothing; the dispatcher picks the row up again.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane.billing.models import tenant_fk
from backplane.db.base import Base
from backplane.db.tenancy import TenantScoped

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
DELIVERY_STATUSES = (PENDING, SUCCEEDED, FAILED)


class WebhookEndpoint(TenantScoped, Base):
    """A URL of the tenant's that receives billing events, with its own signing secret.

    ``event_types`` empty means every event type. The secret is sealed with a key derived from
    the installation's secret (see :mod:`backplane.billing.webhooks.sealing`), so a database
    dump alone cannot forge deliveries.
    """

    __tablename__ = "backplane_webhook_endpoints"
    __table_args__ = (tenant_fk(),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(200), default="")
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret_sealed: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    secret_rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookEvent(TenantScoped, Base):
    """One billing event; ``payload`` is the exact JSON body every delivery of it sends."""

    __tablename__ = "backplane_webhook_events"
    __table_args__ = (tenant_fk(),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(TenantScoped, Base):
    """One event sent (or to be sent) to one endpoint, with the outcome of its last attempt."""

    __tablename__ = "backplane_webhook_deliveries"
    __table_args__ = (
        tenant_fk(),
        ForeignKeyConstraint(
            ["endpoint_id"], ["backplane_webhook_endpoints.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(["event_id"], ["backplane_webhook_events.id"], ondelete="CASCADE"),
        Index("ix_backplane_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the next attempt is due (pending), or None once finished."""
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_response_body: Mapped[str | None] = mapped_column(Text)
    """The start of the receiver's answer (truncated to ``webhooks.max_response_body_bytes``)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
