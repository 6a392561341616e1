"""Tables of federation on the subscribing side: the catalogs this deployment subscribes to
(platform operators' choice, deployment-wide), the listings of their last verified catalog,
and tenants' installs of those listings (the tenant's rows, row-level secured)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    String,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped


class Subscription(Base):
    """Another deployment's catalog: its base URL and the catalog public key the operator
    pinned (the only key its catalog verifies with)."""

    __tablename__ = "marketplace_subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    url: Mapped[str] = mapped_column(String(500), unique=True)
    catalog_key: Mapped[str] = mapped_column(String(64))
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    deployment: Mapped[str] = mapped_column(String(200))
    """The name the other deployment gives itself in its catalog (shown, not trusted)."""
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """When the last verified catalog was issued: an older one is refused (no rollback)."""
    refreshed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FederatedListing(Base):
    """A listing of a subscribed catalog as its last verified copy describes it; ``versions``
    holds each approved version's SHA-256, size, signature, publisher key and signature."""

    __tablename__ = "marketplace_federated_listings"
    __table_args__ = (
        UniqueConstraint(
            "subscription_id",
            "remote_id",
            name="uq_marketplace_federated_listings_subscription_id_remote_id",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_subscriptions.id", ondelete="CASCADE"), index=True
    )
    remote_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    slug: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(100))
    license: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(8000))
    intended_use: Mapped[str] = mapped_column(String(4000))
    limitations: Mapped[str] = mapped_column(String(4000))
    tags: Mapped[list[str]] = mapped_column(JSON)
    publisher: Mapped[dict[str, Any]] = mapped_column(JSON)
    versions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class FederatedInstall(TenantScoped, Base):
    """A tenant's install of a federated listing: the artifact fetched, verified and stored
    here, callable under ``model_name`` (source ``federation``, unmetered by the marketplace:
    payment across deployments is out of scope)."""

    __tablename__ = "marketplace_federated_installs"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
        UniqueConstraint(
            "tenant_id", "federated_listing_id", name="uq_marketplace_federated_installs_listing"
        ),
        UniqueConstraint(
            "tenant_id", "model_name", name="uq_marketplace_federated_installs_model_name"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    federated_listing_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    """The listing's id here (kept when the subscription goes: the model stays installed)."""
    subscription_url: Mapped[str] = mapped_column(String(500))
    slug: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(50))
    sha256: Mapped[str] = mapped_column(String(64))
    publisher_key: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(100))
    installed_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    installed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
