"""The alias tables: a tenant model's named pointers at versions, and their history.

An alias (``production``, ``candidate``, ...) points at one version, or splits its traffic
between two (``split_percent`` of requests go to ``split_version``). Every change appends a row
to the history with the state before and after, who made it and when: that is what a rollback
reads, and what an operator reads to learn how a model reached production.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane.db.base import Base
from backplane.db.tenancy import TenantScoped


class ModelAlias(TenantScoped, Base):
    """Where one alias of a tenant's model points now."""

    __tablename__ = "backplane_model_aliases"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", "alias"),
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    alias: Mapped[str] = mapped_column(String(40))
    version: Mapped[str] = mapped_column(String(50))
    split_version: Mapped[str | None] = mapped_column(String(50), nullable=True)
    split_percent: Mapped[int] = mapped_column(Integer, default=0)
    updated_by: Mapped[str] = mapped_column(String(250), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ModelAliasChange(TenantScoped, Base):
    """One change of an alias: before (``previous_*``, all empty when it was created) and after
    (empty when it was deleted), the action and who did it."""

    __tablename__ = "backplane_model_alias_changes"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
        Index("ix_backplane_model_alias_changes_alias", "tenant_id", "name", "alias", "seq"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    seq: Mapped[int] = mapped_column(Integer)
    """1, 2, ... per alias: orders changes made within one clock tick."""
    name: Mapped[str] = mapped_column(String(100))
    alias: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(20))
    """``set``, ``delete``, ``rollback`` or ``promote``."""
    version: Mapped[str | None] = mapped_column(String(50), nullable=True)
    split_version: Mapped[str | None] = mapped_column(String(50), nullable=True)
    split_percent: Mapped[int] = mapped_column(Integer, default=0)
    previous_version: Mapped[str | None] = mapped_column(String(50), nullable=True)
    previous_split_version: Mapped[str | None] = mapped_column(String(50), nullable=True)
    previous_split_percent: Mapped[int] = mapped_column(Integer, default=0)
    changed_by: Mapped[str] = mapped_column(String(250), default="")
    """The actor (``user:<id>``, ``api_key:<id>``, ``operator:<login>``, ``system``)."""
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
