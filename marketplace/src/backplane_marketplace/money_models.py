"""Tables of the marketplace's money: what each consumer was charged per listing version and
period (the consumer's rows, row-level secured), and the publishers' statements and payout
ledger (deployment-wide, owned through the publisher like the catalog's tables)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped


class Charge(TenantScoped, Base):
    """A consumer's use of one listing version in one billing period and what it was billed:
    written when the consumer's invoice closes (hook ``invoice_closing``), in the same
    transaction as the invoice line it matches, so statements reconcile with invoices."""

    __tablename__ = "marketplace_charges"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
        UniqueConstraint(
            "tenant_id",
            "period_start",
            "version_id",
            name="uq_marketplace_charges_tenant_id_period_start_version_id",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    publisher_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_publishers.id", ondelete="CASCADE")
    )
    listing_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_listings.id", ondelete="CASCADE")
    )
    version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_versions.id", ondelete="CASCADE")
    )
    requests: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)
    price_model: Mapped[str] = mapped_column(String(20))
    unit_price: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    """Minor units billed on the consumer's invoice (0 for free versions, and when the
    invoice's currency is not the version's: nothing is billed then)."""
    currency: Mapped[str] = mapped_column(String(3))
    trial_units: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Requests or rows (the tariff's unit) of this use that the listing's trial allowance
    covered: not billed (``backplane_marketplace.trials``)."""


class Statement(Base):
    """A publisher's statement for one billing period: gross (its consumers' charges), the
    platform's share, net; per listing only aggregates (never who the consumers were)."""

    __tablename__ = "marketplace_statements"
    __table_args__ = (
        UniqueConstraint(
            "publisher_id",
            "period_start",
            "currency",
            name="uq_marketplace_statements_publisher_id_period_start_currency",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    publisher_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_publishers.id", ondelete="CASCADE"), index=True
    )
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    currency: Mapped[str] = mapped_column(String(3))
    gross: Mapped[int] = mapped_column(BigInteger)
    platform_share_percent: Mapped[int] = mapped_column(Integer)
    platform_share: Mapped[int] = mapped_column(BigInteger)
    net: Mapped[int] = mapped_column(BigInteger)
    listings: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """Per listing: ``listing_id``, ``slug``, ``requests``, ``rows``, ``consumers`` (a count)
    and ``gross``."""
    payout_provider: Mapped[str] = mapped_column(String(50))
    payout_reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PayoutEntry(Base):
    """The default payout provider's ledger: one row per statement, the net owed."""

    __tablename__ = "marketplace_payout_ledger"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    statement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_statements.id", ondelete="CASCADE"), unique=True
    )
    publisher_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_publishers.id", ondelete="CASCADE"), index=True
    )
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
