"""The plugin's tables. Every row is tenant-owned (``TenantScoped``: the kernel scopes queries
to the caller's tenant, and PostgreSQL's row-level security does it again) and references its
tenant, so a deleted tenant's templates and documents go with it.

A template's content lives in its versions: editing adds a version, never changes one, so a
document always records exactly what it was rendered from.
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
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped


def _now() -> datetime:
    return datetime.now(UTC)


def _tenant_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE")


class DocumentTemplate(TenantScoped, Base):
    """A named template of a tenant; ``current_version`` is the one renders use by default."""

    __tablename__ = "documents_templates"
    __table_args__ = (
        _tenant_fk(),
        UniqueConstraint("tenant_id", "name", name="uq_documents_templates_tenant_name"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    engine: Mapped[str] = mapped_column(String(16))
    """Fixed for the template's life: versions of one template share an engine."""
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class TemplateVersion(TenantScoped, Base):
    """One immutable version of a template: its source (text or a .docx) and field schema."""

    __tablename__ = "documents_template_versions"
    __table_args__ = (
        _tenant_fk(),
        ForeignKeyConstraint(["template_id"], ["documents_templates.id"], ondelete="CASCADE"),
        UniqueConstraint("template_id", "number", name="uq_documents_template_versions_number"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    template_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    number: Mapped[int] = mapped_column(Integer)
    engine: Mapped[str] = mapped_column(String(16))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    field_schema: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Document(TenantScoped, Base):
    """A generated document: which template version made it, and the stored file (kernel files
    service) holding its bytes. The data it was rendered from is not kept: it may be personal;
    ``subject_email`` says whom the content is about, for that person's data rights."""

    __tablename__ = "documents_documents"
    __table_args__ = (
        _tenant_fk(),
        ForeignKeyConstraint(["template_id"], ["documents_templates.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(
            ["version_id"], ["documents_template_versions.id"], ondelete="CASCADE"
        ),
        Index("ix_documents_documents_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    template_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    version_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    version_number: Mapped[int] = mapped_column(Integer)
    file_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    name: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(BigInteger)
    pages: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    subject_email: Mapped[str | None] = mapped_column(String(320), nullable=True, index=True)
    """Whom the document is about, when the caller said (a certificate's recipient): a
    person's export includes it, their erasure deletes it."""
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
