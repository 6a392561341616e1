"""Mail tables: the messages (the durable queue of the mail system), tenants' sender
identities, and the operator's DKIM keys (one per sending domain, the private key sealed)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKeyConstraint, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backplane.db.base import Base
from backplane.db.tenancy import TenantScoped

QUEUED, SENDING, SENT, FAILED, UNCONFIRMED = "queued", "sending", "sent", "failed", "unconfirmed"
STATUSES = (QUEUED, SENDING, SENT, FAILED, UNCONFIRMED)
CONNECTING, HANDING_OVER = "connecting", "handing_over"
"""Phases of an attempt (``sending``): before and after the point where the receiver may have
accepted the message (see :mod:`backplane.mail.delivery`)."""


def _tenant_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE")


class MailMessage(TenantScoped, Base):
    """One message to deliver: its exact bytes (unsigned; DKIM signs at delivery, with the key
    current then), its envelope, and where its delivery stands."""

    __tablename__ = "backplane_mail_messages"
    __table_args__ = (
        _tenant_fk(),
        Index("ix_backplane_mail_messages_due", "status", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    """The ``Message-ID`` header (unique: receivers de-duplicate on it)."""
    sender: Mapped[str] = mapped_column(String(320))
    """The envelope sender (``MAIL FROM``): the From address."""
    recipients: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(998))
    data: Mapped[str] = mapped_column(Text)
    """The RFC 5322 message as composed (ASCII: non-ASCII parts are MIME-encoded)."""
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    phase: Mapped[str | None] = mapped_column(String(16))
    """Of a ``sending`` message: ``connecting`` or ``handing_over``."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When a queued message is due."""
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When a ``sending`` message's attempt is presumed dead."""
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MailSender(TenantScoped, Base):
    """A tenant's sender identity: the From (its domain must be the default From's or have a
    DKIM key) and an optional Reply-To."""

    __tablename__ = "backplane_mail_senders"
    __table_args__ = (_tenant_fk(),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    from_address: Mapped[str] = mapped_column(String(320))
    from_name: Mapped[str] = mapped_column(String(200), default="")
    reply_to: Mapped[str | None] = mapped_column(String(320))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DkimKey(Base):
    """The operator's DKIM key of one sending domain (global: the domain's DNS is one). The
    private key (PEM) is sealed with a key derived from the installation's secret."""

    __tablename__ = "backplane_mail_dkim_keys"

    domain: Mapped[str] = mapped_column(String(253), primary_key=True)
    selector: Mapped[str] = mapped_column(String(63))
    private_key_sealed: Mapped[str] = mapped_column(Text)
    public_key: Mapped[str] = mapped_column(Text)
    """Base64 DER SubjectPublicKeyInfo: the ``p=`` of the DNS record."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
