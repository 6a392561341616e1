"""The tables of bulk jobs: a job, and one outcome per row of its data.

``documents_job_rows`` has the primary key ``(job_id, number)``: a row can have one outcome
only, whatever delivery of a chunk task ran. A chunk writes its outcomes, its usage and its
stored documents in one transaction, so after a worker's death a job has exactly the outcomes
of the chunks that committed, and the chunk that was cut short runs again.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class DocumentJob(TenantScoped, Base):
    """A bulk generation: its template version, its spooled rows, its progress and result."""

    __tablename__ = "documents_jobs"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["template_id"], ["documents_templates.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(
            ["version_id"], ["documents_template_versions.id"], ondelete="CASCADE"
        ),
        Index("ix_documents_jobs_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    template_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    version_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    version_number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    total: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    chunk_rows: Mapped[int] = mapped_column(Integer)
    chunks_total: Mapped[int] = mapped_column(Integer)
    chunks_done: Mapped[int] = mapped_column(Integer, default=0)
    chunks_enqueued: Mapped[int] = mapped_column(Integer, default=0)
    data_file_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    """The spooled rows (kernel files service); deleted when the job ends."""
    offsets: Mapped[list[int]] = mapped_column(JSON)
    """Where each chunk starts in the spool (see :mod:`backplane_documents.jobs_spool`)."""
    data_size: Mapped[int] = mapped_column(BigInteger)
    zip_file_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    max_error_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    name_field: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The field whose value names each document in the ZIP (else the row number)."""
    source: Mapped[str] = mapped_column(String(10), default="api")
    """``api`` (chunks run as tasks) or ``cli`` (run by ``backplane documents generate``)."""
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class JobRow(TenantScoped, Base):
    """The outcome of one data row: its document (where in which chunk file) or its error,
    and its quality report."""

    __tablename__ = "documents_job_rows"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["job_id"], ["documents_jobs.id"], ondelete="CASCADE"),
        Index("ix_documents_job_rows_status", "job_id", "status", "number"),
        Index("ix_documents_job_rows_chunk", "job_id", "chunk"),
    )

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    line: Mapped[int] = mapped_column(Integer)
    chunk: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10))
    """``done`` or ``failed``."""
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    file_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    """The chunk file holding the document (until the ZIP is assembled)."""
    byte_offset: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    """The document's name in the ZIP, before duplicates are told apart."""
    media_type: Mapped[str | None] = mapped_column(String(127), nullable=True)
    pages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
