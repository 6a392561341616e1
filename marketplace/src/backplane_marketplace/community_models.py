"""Ratings and written reviews of listings by the tenants that installed them.

A review is catalog content every consumer reads, so the table is global like the listings
(no ``tenant_id`` column, no row-level security): ``rater_tenant_id`` names the tenant that
wrote it, one review per tenant and listing, and no route shows it to anybody else (reviews
are shown without their author's tenant or user: installing a listing is the tenant's own
business). The publisher may answer each review once (``reply``, editable)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
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


class Review(Base):
    """A tenant's rating (1..5 stars) of a listing, with an optional title and text."""

    __tablename__ = "marketplace_reviews"
    __table_args__ = (
        UniqueConstraint(
            "listing_id",
            "rater_tenant_id",
            name="uq_marketplace_reviews_listing_id_rater_tenant_id",
        ),
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    listing_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_listings.id", ondelete="CASCADE"), index=True
    )
    rater_tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("backplane_tenants.id", ondelete="CASCADE"), index=True
    )
    written_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("backplane_users.id", ondelete="SET NULL")
    )
    rating: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(String(4000), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    reply: Mapped[str] = mapped_column(String(4000), default="")
    """The publisher's answer ("" for none)."""
    replied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Notice(TenantScoped, Base):
    """What the marketplace tells a consumer tenant about one of its installs: a following
    install's next version announced (``upgrade_pending``) and the move made (``upgraded``).
    The tenant's own rows (row-level security), read at ``GET /api/marketplace/notices``."""

    __tablename__ = "marketplace_notices"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
        UniqueConstraint(
            "tenant_id",
            "install_id",
            "kind",
            "to_version_id",
            name="uq_marketplace_notices_tenant_id_install_id_kind_to_version_id",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    install_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("marketplace_installs.id", ondelete="SET NULL")
    )
    listing_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_listings.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(30))
    to_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_versions.id", ondelete="CASCADE")
    )
    message: Mapped[str] = mapped_column(String(2000))
    effective_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
