"""The model registry table: a tenant's uploaded (and, later, marketplace-installed) models.

Kernel- and plugin-shipped models are not rows: they come from ``register_inference_models``
on every start and are visible to every tenant. A row is one immutable version; its artifact is
stored once per content hash (``sha256``), however many tenants or versions share it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKeyConstraint,
    Integer,
    Select,
    String,
    UniqueConstraint,
    Uuid,
    func,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane.db.base import Base
from backplane.db.tenancy import TenantScoped


class ModelVersion(TenantScoped, Base):
    """One version of a tenant's model. Never updated in place except its ``status`` and
    ``drift_alerted_at`` (``feature_profile`` is written in the transaction that creates it)."""

    __tablename__ = "backplane_model_versions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", "version"),
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(50))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(20), default="upload")
    description: Mapped[str] = mapped_column(String(500), default="")
    signature: Mapped[dict[str, Any]] = mapped_column(JSON)
    """``{"inputs": [...], "outputs": [...]}`` as the upload trial read it from onnxruntime."""
    dynamic_batch: Mapped[bool] = mapped_column(Boolean)
    max_batch_size: Mapped[int] = mapped_column(Integer, default=0)
    max_queue_delay_us: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="ready")
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    feature_profile: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    """A trained version's training-data profile (:func:`backplane.inference.drift.
    feature_profile`): what served inputs are compared with for drift. None for uploads."""
    drift_alerted_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    """When the last drift alert for this version was raised (``inference.drift_cooldown_s``
    counts from it, whichever process raised it)."""


def model_rows(tenant_id: uuid.UUID, name: str) -> Select[tuple[ModelVersion]]:
    """Every row (version) of the tenant's model ``name``."""
    return select(ModelVersion).where(
        ModelVersion.tenant_id == tenant_id, ModelVersion.name == name
    )
