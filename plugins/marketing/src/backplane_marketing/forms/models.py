"""Form tables: the tenant's signup forms and their submissions (a pending double opt-in each,
kept until confirmed or expired). ``TenantScoped`` with RLS."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped
from backplane_marketing.models import now

PENDING, CONFIRMED = "pending", "confirmed"
"""Submission states: waiting for the confirmation link; confirmed (the contact is made or
updated, its consent recorded)."""


def _tenant_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE")


class Form(TenantScoped, Base):
    """A signup form: its page (title, intro, optional sandboxed page template), the fields
    beside ``email`` and what each maps to, and what confirming does (lists, tags)."""

    __tablename__ = "marketing_forms"
    __table_args__ = (
        _tenant_fk(),
        UniqueConstraint("tenant_id", "name", name="uq_marketing_forms_tenant_name"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    intro: Mapped[str] = mapped_column(String(2000), default="")
    button: Mapped[str] = mapped_column(String(100), default="Subscribe")
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    list_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    page_template: Mapped[str] = mapped_column(Text, default="")
    confirm_subject: Mapped[str] = mapped_column(String(998))
    confirm_text: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class FormSubmission(TenantScoped, Base):
    """One submission waiting for (or past) its confirmation: what was entered, and the
    SHA-256 of the opaque token the confirmation mail carries (the token is not stored)."""

    __tablename__ = "marketing_form_submissions"
    __table_args__ = (
        _tenant_fk(),
        ForeignKeyConstraint(["form_id"], ["marketing_forms.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["contact_id"], ["marketing_contacts.id"], ondelete="CASCADE"),
        UniqueConstraint("token_sha256", name="uq_marketing_form_submissions_token"),
        Index("ix_marketing_form_submissions_email", "tenant_id", "email"),
        Index("ix_marketing_form_submissions_form", "form_id", "state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    form_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    token_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    mail_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    contact_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


FORM_TABLES: tuple[Any, ...] = (Form, FormSubmission)
"""Parents first."""
