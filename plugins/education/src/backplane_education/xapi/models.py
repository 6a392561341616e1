"""The LRS's tables, all tenant-owned (``TenantScoped`` and, on PostgreSQL, row-level security).

Statements keep the JSON as stored (``payload``, returned as is for ``format=exact``) beside the
columns every query filter uses, so ``GET /xapi/statements`` is one indexed SQL query: actor,
object, verb, registration and stored on the statement row; related agents and activities
(``related_agents``/``related_activities``) in ``xapi_statement_refs``. Pages follow
``(stored, seq)`` (the specification's stored order; ``seq`` breaks ties within a batch), and
every filter's index ends with those two columns, so a page is a short index range scan.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped

IRI = 2048
"""Longest IRI (verb, activity, agent identifier) the LRS stores; longer ones are a 400."""
SEQ = BigInteger().with_variant(Integer, "sqlite")
"""SQLite numbers rows itself only for an INTEGER primary key."""
AGENT_REF = "g"
ACTIVITY_REF = "a"


def _now() -> datetime:
    return datetime.now(UTC)


def _tenant_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE")


class XapiStatement(TenantScoped, Base):
    __tablename__ = "xapi_statements"
    __table_args__ = (
        _tenant_fk(),
        UniqueConstraint("tenant_id", "statement_id", name="uq_xapi_statements_id"),
        Index("ix_xapi_statements_verb", "tenant_id", "verb", "stored", "seq"),
        Index("ix_xapi_statements_actor", "tenant_id", "actor", "stored", "seq"),
        Index("ix_xapi_statements_object_agent", "tenant_id", "object_agent", "stored", "seq"),
        Index("ix_xapi_statements_activity", "tenant_id", "object_activity", "stored", "seq"),
        Index("ix_xapi_statements_registration", "tenant_id", "registration", "stored", "seq"),
        Index("ix_xapi_statements_stored", "tenant_id", "stored", "seq"),
        # voiding statements only: see migration education_0006
        Index(
            "ix_xapi_statements_voids",
            "tenant_id",
            "voids",
            postgresql_where=text("voids IS NOT NULL"),
            sqlite_where=text("voids IS NOT NULL"),
        ),
    )

    seq: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    statement_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    stored: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    verb: Mapped[str] = mapped_column(String(IRI))
    actor: Mapped[str | None] = mapped_column(String(IRI), nullable=True)
    object_agent: Mapped[str | None] = mapped_column(String(IRI), nullable=True)
    object_activity: Mapped[str | None] = mapped_column(String(IRI), nullable=True)
    registration: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    voids: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    """The statement this voiding statement voids."""
    voided: Mapped[bool] = mapped_column(Boolean, default=False)
    has_attachments: Mapped[bool] = mapped_column(Boolean, default=False)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class XapiStatementRef(TenantScoped, Base):
    """An agent (``kind`` g) or activity (a) a statement relates to, for the ``related_*``
    filters; removed with its statement."""

    __tablename__ = "xapi_statement_refs"
    __table_args__ = (
        _tenant_fk(),
        ForeignKeyConstraint(["seq"], ["xapi_statements.seq"], ondelete="CASCADE"),
        Index("ix_xapi_statement_refs_value", "tenant_id", "kind", "value", "stored", "seq"),
    )

    seq: Mapped[int] = mapped_column(SEQ, primary_key=True)
    kind: Mapped[str] = mapped_column(String(1), primary_key=True)
    value: Mapped[str] = mapped_column(String(IRI), primary_key=True)
    stored: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """The statement's ``stored`` (copied: the related filters page in stored order from this
    table's index alone)."""


class XapiAttachment(TenantScoped, Base):
    """Attachment content, once per tenant and hash (statements name it by ``sha2``)."""

    __tablename__ = "xapi_attachments"
    __table_args__ = (
        _tenant_fk(),
        UniqueConstraint("tenant_id", "sha2", name="uq_xapi_attachments_sha2"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    sha2: Mapped[str] = mapped_column(String(128))
    content_type: Mapped[str] = mapped_column(String(255))
    content: Mapped[bytes] = mapped_column(LargeBinary)


class XapiActivity(TenantScoped, Base):
    """The LRS's canonical definition of an activity: the latest one a statement carried."""

    __tablename__ = "xapi_activities"
    __table_args__ = (
        _tenant_fk(),
        Index("ix_xapi_activities_key", "tenant_id", "key", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    key: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the activity id (IRIs can be longer than an index entry may be)."""
    activity_id: Mapped[str] = mapped_column(String(IRI))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)


class XapiDocument(TenantScoped, Base):
    """A State, Activity Profile or Agent Profile document. ``scope`` hashes what the
    resource files it under (activity, agent, registration), ``key`` that and its id."""

    __tablename__ = "xapi_documents"
    __table_args__ = (
        _tenant_fk(),
        Index("ix_xapi_documents_key", "tenant_id", "key", unique=True),
        Index("ix_xapi_documents_scope", "tenant_id", "scope", "updated"),
        Index("ix_xapi_documents_agent", "tenant_id", "agent"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64))
    document_id: Mapped[str] = mapped_column(String(IRI))
    activity_id: Mapped[str] = mapped_column(String(IRI), default="")
    agent: Mapped[str] = mapped_column(String(IRI), default="")
    registration: Mapped[str] = mapped_column(String(36), default="")
    content_type: Mapped[str] = mapped_column(String(255))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    etag: Mapped[str] = mapped_column(String(64))
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class XapiCredential(TenantScoped, Base):
    """An LRS key (HTTP Basic user name) and its secret's digest, scoped read, write or all."""

    __tablename__ = "xapi_credentials"
    __table_args__ = (_tenant_fk(),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The key itself (``xapi-<tenant id>-<random>``): it names its tenant, so the LRS finds
    the credential without reading across tenants."""
    name: Mapped[str] = mapped_column(String(200))
    secret_digest: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(8))
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
