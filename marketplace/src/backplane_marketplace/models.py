"""The marketplace's tables.

Publishers and their keys are catalog data of the whole deployment, not a tenant's private
rows: platform operators review every tenant's application, and every consumer tenant will
verify artifacts against a publisher's public keys. So they are global tables (no
``tenant_id`` column, no row-level security) that name their owner in
``publisher_tenant_id``; every route that changes them checks that the caller's tenant is that
owner (or that the caller is a platform operator), and none exposes another tenant's private
detail (who applied is a user id shown to the publisher's own tenant and operators only).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
    false,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped

PUBLISHER_STATES = ("pending", "approved", "rejected")


class Publisher(Base):
    """A tenant that applied to publish models; one per tenant."""

    __tablename__ = "marketplace_publishers"
    __table_args__ = (CheckConstraint(f"state IN {PUBLISHER_STATES!r}", name="state"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    publisher_tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("backplane_tenants.id", ondelete="CASCADE"), unique=True
    )
    display_name: Mapped[str] = mapped_column(String(200))
    website: Mapped[str] = mapped_column(String(500), default="")
    description: Mapped[str] = mapped_column(String(4000), default="")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    applied_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("backplane_users.id", ondelete="SET NULL")
    )
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    decided_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("backplane_users.id", ondelete="SET NULL")
    )
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision_reason: Mapped[str] = mapped_column(String(2000), default="")


class SigningKey(Base):
    """A publisher's Ed25519 public key (raw 32 bytes, base64). ``retired_at``: replaced by a
    rotation, so no longer accepted for new signatures, while what it signed still verifies;
    ``revoked_at``: nothing it signed verifies any more."""

    __tablename__ = "marketplace_signing_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    publisher_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_publishers.id", ondelete="CASCADE"), index=True
    )
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the raw public key, hex: how signatures name their key."""
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("backplane_users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


VERSION_STATES = ("in_review", "changes_requested", "approved", "rejected")


class Listing(Base):
    """A publisher's model in the catalog: its model card; versions hold the artifacts."""

    __tablename__ = "marketplace_listings"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    publisher_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_publishers.id", ondelete="CASCADE"), index=True
    )
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(8000), default="")
    intended_use: Mapped[str] = mapped_column(String(4000), default="")
    limitations: Mapped[str] = mapped_column(String(4000), default="")
    license: Mapped[str] = mapped_column(String(200))
    downloadable: Mapped[bool] = mapped_column(Boolean, default=False)
    """Whether the license lets consumers download the artifact (no route does yet)."""
    federated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """The publisher opted in to federation: the listing's approved versions are in this
    deployment's signed catalog and their artifacts fetchable by subscribing deployments
    (free there, or licensed out of band)."""
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    installs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """How many tenants have it installed now (a count: who installed is theirs to know)."""
    trial_units: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Free requests or rows (each version's billing unit) per consumer tenant before its
    charges start (``backplane_marketplace.trials``); fixed when the listing is created."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ListingVersion(Base):
    """An immutable version: a signed, validated artifact whose examples ran as declared, with
    the measured latency; then the operators' review (``state``)."""

    __tablename__ = "marketplace_versions"
    __table_args__ = (
        UniqueConstraint("listing_id", "version"),
        CheckConstraint(f"state IN {VERSION_STATES!r}", name="state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    listing_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_listings.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[str] = mapped_column(String(50))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[str] = mapped_column(String(100))
    signing_key_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_signing_keys.id", ondelete="RESTRICT")
    )
    inputs: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    outputs: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    examples: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    claimed_metrics: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    checks: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The automatic checks' report: examples run, p50/p99 latency in ms, runs measured."""
    changelog: Mapped[str] = mapped_column(String(4000), default="")
    price_model: Mapped[str] = mapped_column(String(20), default="free", server_default="free")
    """``free``, ``per_request`` or ``per_row``: fixed with the version (see ``pricing``)."""
    unit_price: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Minor units of ``currency`` per request or row."""
    currency: Mapped[str] = mapped_column(String(3), default="USD", server_default="USD")
    state: Mapped[str] = mapped_column(String(20), default="in_review")
    review_reason: Mapped[str] = mapped_column(String(2000), default="")
    submitted_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("backplane_users.id", ondelete="SET NULL")
    )
    submitted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    decided_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("backplane_users.id", ondelete="SET NULL")
    )
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deprecated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """From this instant the version is deprecated: no new installs; existing ones keep
    calling it and see the notice (``backplane_marketplace.deprecation``)."""
    deprecation_note: Mapped[str] = mapped_column(String(2000), default="", server_default="")


class Install(TenantScoped, Base):
    """A consumer tenant's install of a listing, pinned to a version and callable under
    ``model_name`` (a model of the tenant's registry, source ``marketplace``)."""

    __tablename__ = "marketplace_installs"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
        UniqueConstraint("tenant_id", "listing_id", name="uq_marketplace_installs_listing"),
        UniqueConstraint("tenant_id", "model_name", name="uq_marketplace_installs_model_name"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    listing_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_listings.id", ondelete="CASCADE")
    )
    version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_versions.id", ondelete="CASCADE")
    )
    model_name: Mapped[str] = mapped_column(String(100))
    price_model: Mapped[str] = mapped_column(String(20), default="free", server_default="free")
    """The tariff the tenant accepted when installing (the version's): the model,"""
    unit_price: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """the price per request or row in minor units,"""
    currency: Mapped[str] = mapped_column(String(3), default="USD", server_default="USD")
    """and their currency."""
    installed_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    installed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    mode: Mapped[str] = mapped_column(String(10), default="pinned", server_default="pinned")
    """``pinned`` to its version, or ``follow``: moved to each newly approved version after a
    notice (``backplane_marketplace.follow``)."""
    pending_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("marketplace_versions.id", ondelete="SET NULL")
    )
    """A following install's announced next version,"""
    upgrade_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """and when it moves there (sooner if the tenant accepts)."""


from backplane_marketplace.community_models import Notice, Review  # noqa: E402
from backplane_marketplace.federation_models import (  # noqa: E402
    FederatedInstall,
    FederatedListing,
    Subscription,
)
from backplane_marketplace.money_models import Charge, PayoutEntry, Statement  # noqa: E402

TABLES = (
    Publisher,
    SigningKey,
    Listing,
    ListingVersion,
    Install,
    Charge,
    Statement,
    PayoutEntry,
    Review,
    Notice,
    Subscription,
    FederatedListing,
    FederatedInstall,
)
