"""Tenant files' metadata (the bytes are in a :class:`~backplane.files.storage.FileStore`), and
each tenant's running total of bytes stored, which holds the ``files.bytes`` quota."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKeyConstraint,
    Index,
    PrimaryKeyConstraint,
    String,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane.db.base import Base
from backplane.db.tenancy import TenantScoped


def _tenant_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE")


class StoredFile(TenantScoped, Base):
    """One tenant file. ``deleted_at`` set: gone for the tenant (404, not counted in its
    quota); the retention task removes the object, then the row."""

    __tablename__ = "backplane_files"
    __table_args__ = (
        _tenant_fk(),
        Index("ix_backplane_files_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255))
    """The name the uploader gave (for ``Content-Disposition``); never a path on disk."""
    content_type: Mapped[str] = mapped_column(String(127))
    """Detected from the bytes, not taken from the client."""
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(300), unique=True)
    owner: Mapped[str] = mapped_column(String(100), default="")
    """The plugin that stored it (``core`` for the files API)."""
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class FileUsage(TenantScoped, Base):
    """Bytes a tenant stores now: changed by one conditional ``UPDATE`` per upload or delete,
    so two uploads at the edge of the quota cannot both pass (the row lock orders them)."""

    __tablename__ = "backplane_file_usage"
    __table_args__ = (PrimaryKeyConstraint("tenant_id"), _tenant_fk())

    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
