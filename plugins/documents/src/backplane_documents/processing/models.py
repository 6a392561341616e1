"""The tables of document processing: extractions, their pages, and bulk extraction jobs.

Every row is tenant-owned (``TenantScoped`` plus row-level security on PostgreSQL) and goes with
its tenant. A page's text is a row of its own, keyed by ``(extraction_id, number)``: a bulk job's
chunk writes its pages in the transaction that runs it, so a page can never be stored twice,
whichever delivery of the chunk's task committed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _tenant_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE")


class ExtractionJob(TenantScoped, Base):
    """A bulk extraction over stored files: its plan (chunks of pages) and its progress."""

    __tablename__ = "documents_extraction_jobs"
    __table_args__ = (_tenant_fk(), Index("ix_documents_extraction_jobs_created", "created_at"))

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    """``queued``, ``running``, ``succeeded``, ``failed`` or ``quota_exceeded``."""
    total_pages: Mapped[int] = mapped_column(Integer)
    done_pages: Mapped[int] = mapped_column(Integer, default=0)
    documents: Mapped[int] = mapped_column(Integer)
    failed_documents: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[list[Any]] = mapped_column(JSON)
    """``[[extraction_id, first_page, stop_page], ...]`` (0-based, stop exclusive)."""
    chunks_done: Mapped[int] = mapped_column(Integer, default=0)
    template_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    version_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rules: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DocumentExtraction(TenantScoped, Base):
    """The extraction of one stored file: its status, page count and fields."""

    __tablename__ = "documents_extractions"
    __table_args__ = (
        _tenant_fk(),
        ForeignKeyConstraint(["job_id"], ["documents_extraction_jobs.id"], ondelete="CASCADE"),
        Index("ix_documents_extractions_created", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    file_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    """The kernel file the text came from."""
    name: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(127))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    """``queued``, ``running``, ``done`` or ``failed`` (``error`` says why)."""
    pages: Mapped[int] = mapped_column(Integer, default=0)
    done_pages: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    template_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    version_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rules: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    fields: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    field_errors: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    """The document's class as a user set it (training data for the documents trainer)."""
    classifier: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """The model asked to classify it (``processing.classify.ClassifierSpec``)."""
    classification: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """What that model said (``processing.classify.Classification``)."""


class ExtractedPage(TenantScoped, Base):
    """One page's text (and tables) of an extraction."""

    __tablename__ = "documents_extraction_pages"
    __table_args__ = (
        _tenant_fk(),
        ForeignKeyConstraint(["extraction_id"], ["documents_extractions.id"], ondelete="CASCADE"),
    )

    extraction_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    tables: Mapped[list[Any]] = mapped_column(JSON, default=list)


class ChunkDone(TenantScoped, Base):
    """The ledger: chunk ``number`` of job ``job_id`` committed (exactly once)."""

    __tablename__ = "documents_extraction_chunks"
    __table_args__ = (
        _tenant_fk(),
        ForeignKeyConstraint(["job_id"], ["documents_extraction_jobs.id"], ondelete="CASCADE"),
    )

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    pages: Mapped[int] = mapped_column(Integer)
