"""The certificates table: one row per completed enrolment that got its certificate document
(rendered and stored by the documents plugin, through the kernel's ``documents.render``
service; this plugin keeps where it is and what it certifies)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKeyConstraint, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped
from backplane_education.models import now


class Certificate(TenantScoped, Base):
    """A learner's certificate of completion of one course (one per enrolment)."""

    __tablename__ = "education_certificates"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["course_id"], ["education_courses.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["enrolment_id"], ["education_enrolments.id"], ondelete="CASCADE"),
        UniqueConstraint("enrolment_id", name="uq_education_certificates_enrolment"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    enrolment_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    course_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    version: Mapped[int] = mapped_column(Integer)
    course_title: Mapped[str] = mapped_column(String(200))
    template: Mapped[str] = mapped_column(String(200))
    """The documents template it was rendered from (its name when issued)."""
    document_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    """The documents plugin's document."""
    file_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    """The stored file (the kernel's files service)."""
    name: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    completed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
