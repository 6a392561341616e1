"""The plugin's tables. Every row is tenant-owned (``TenantScoped``: the kernel scopes queries
to the caller's tenant, PostgreSQL's row-level security does it again) and references its
tenant, so a deleted tenant's contacts go with it.

A contact is unique per tenant by its normalised email (a unique constraint, so concurrent
creates and imports of one address can never make two). Custom attribute values live in one
JSON column (JSONB on PostgreSQL), typed by the tenant's attribute definitions; tags, list
subscriptions and timeline events are rows of their own, so segments filter on them in SQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
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
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped

JSON_DOC = JSON().with_variant(JSONB(), "postgresql")
"""JSONB on PostgreSQL (``||`` merges attributes in an upsert), JSON text elsewhere."""


def now() -> datetime:
    return datetime.now(UTC)


def _tenant_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE")


def _contact_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["contact_id"], ["marketing_contacts.id"], ondelete="CASCADE")


class AttributeDefinition(TenantScoped, Base):
    """A tenant's custom attribute: its key and type (string, number, boolean, date, list)."""

    __tablename__ = "marketing_attributes"
    __table_args__ = (
        _tenant_fk(),
        UniqueConstraint("tenant_id", "key", name="uq_marketing_attributes_tenant_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    key: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200), default="")
    choices: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Contact(TenantScoped, Base):
    """A person the tenant may write to; ``email`` is the normalised address (the dedupe key)."""

    __tablename__ = "marketing_contacts"
    __table_args__ = (
        _tenant_fk(),
        UniqueConstraint("tenant_id", "email", name="uq_marketing_contacts_tenant_email"),
        Index("ix_marketing_contacts_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON_DOC, default=dict)
    consent: Mapped[str] = mapped_column(String(16), default="unknown")
    """``granted``, ``withdrawn`` or ``unknown``."""
    consent_source: Mapped[str] = mapped_column(String(200), default="")
    consent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    import_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    """The import that last wrote the contact: a second row of one file with the same address
    finds it set to its own import and is reported as a duplicate instead of overwriting."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class ContactTag(TenantScoped, Base):
    """One tag of one contact."""

    __tablename__ = "marketing_contact_tags"
    __table_args__ = (
        _tenant_fk(),
        _contact_fk(),
        Index("ix_marketing_contact_tags_tenant_tag", "tenant_id", "tag"),
    )

    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)


class MailingList(TenantScoped, Base):
    """A list contacts subscribe to (a newsletter, product updates)."""

    __tablename__ = "marketing_lists"
    __table_args__ = (
        _tenant_fk(),
        UniqueConstraint("tenant_id", "name", name="uq_marketing_lists_tenant_name"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Subscription(TenantScoped, Base):
    """A contact's status on one list: ``subscribed`` or ``unsubscribed`` (kept, so that an
    unsubscribe is remembered)."""

    __tablename__ = "marketing_subscriptions"
    __table_args__ = (
        _tenant_fk(),
        _contact_fk(),
        ForeignKeyConstraint(["list_id"], ["marketing_lists.id"], ondelete="CASCADE"),
        Index("ix_marketing_subscriptions_list", "list_id", "status"),
    )

    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    list_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class ContactEvent(TenantScoped, Base):
    """One entry of a contact's activity timeline (``opened``, ``clicked``, ``signed_up``,
    ``merged``, a custom event posted by API)."""

    __tablename__ = "marketing_events"
    __table_args__ = (
        _tenant_fk(),
        _contact_fk(),
        Index("ix_marketing_events_contact_time", "contact_id", "occurred_at"),
        Index("ix_marketing_events_tenant_type_time", "tenant_id", "type", "occurred_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON_DOC, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class ImportJob(TenantScoped, Base):
    """An import of a stored file (kernel files service), run chunk by chunk by the outbox task
    ``marketing.import_chunk``; ``offset``/``line`` are where the next chunk starts."""

    __tablename__ = "marketing_imports"
    __table_args__ = (_tenant_fk(),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    file_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    """Format, encoding, dialect and header mapping, fixed when the import was queued."""
    status: Mapped[str] = mapped_column(String(16), default="queued")
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    done: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    line: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str] = mapped_column(String(2000), default="")
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ImportRowError(TenantScoped, Base):
    """A bad row of an import: its line in the file and why."""

    __tablename__ = "marketing_import_errors"
    __table_args__ = (
        _tenant_fk(),
        ForeignKeyConstraint(["import_id"], ["marketing_imports.id"], ondelete="CASCADE"),
    )

    import_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    line: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reason: Mapped[str] = mapped_column(String(500))


class Segment(TenantScoped, Base):
    """A saved filter: ``dynamic`` segments are evaluated when used, ``static`` ones keep the
    members they had when last materialised (``marketing_segment_members``)."""

    __tablename__ = "marketing_segments"
    __table_args__ = (
        _tenant_fk(),
        UniqueConstraint("tenant_id", "name", name="uq_marketing_segments_tenant_name"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    filter: Mapped[dict[str, Any]] = mapped_column(JSON)
    materialised_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class SegmentMember(TenantScoped, Base):
    """A member of a static segment."""

    __tablename__ = "marketing_segment_members"
    __table_args__ = (
        _tenant_fk(),
        _contact_fk(),
        ForeignKeyConstraint(["segment_id"], ["marketing_segments.id"], ondelete="CASCADE"),
    )

    segment_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)


TABLES: tuple[type[Base], ...] = (
    AttributeDefinition,
    Contact,
    ContactTag,
    MailingList,
    Subscription,
    ContactEvent,
    ImportJob,
    ImportRowError,
    Segment,
    SegmentMember,
)
"""Every table of the plugin, parents first."""
