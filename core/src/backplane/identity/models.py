"""Identity tables: tenants, users, memberships, and which plugins each tenant has enabled.

Users are global (one person may belong to several tenants); memberships and per-tenant plugin
switches are tenant-owned and carry row-level security on PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane.db.base import Base
from backplane.db.tenancy import TenantScoped

ROLES = ("owner", "admin", "member", "viewer")
ROLE_RANK = {role: rank for rank, role in enumerate(reversed(ROLES))}
"""Higher is more powerful: viewer 0 ... owner 3."""


def lower_role(first: str, second: str) -> str:
    """The less powerful of two roles (an API key acts with at most its creator's role)."""
    return first if ROLE_RANK.get(first, -1) <= ROLE_RANK.get(second, -1) else second


class Tenant(Base):
    """An organisation using Backplane; the unit of isolation and billing."""

    __tablename__ = "backplane_tenants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class User(Base):
    """A person; ``email`` is stored lower-cased and is never used as a token subject."""

    __tablename__ = "backplane_users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Raised to end every session of the user (a password change): access tokens and
    refresh tokens carry the epoch they were issued in, older ones are refused."""
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the user proved the address (a verification link, a reset or an invitation)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Membership(TenantScoped, Base):
    """A user's role in one tenant."""

    __tablename__ = "backplane_memberships"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id"),
        CheckConstraint(f"role IN {ROLES!r}", name="role"),
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("backplane_users.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TenantPlugin(TenantScoped, Base):
    """Whether an installed plugin is enabled for a tenant (absent row: the plugin's default)."""

    __tablename__ = "backplane_tenant_plugins"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "plugin"),
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
    )

    plugin: Mapped[str] = mapped_column(String(63))
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class RefreshToken(Base):
    """One refresh token of a login session; rotated on use, all of a family revoked on reuse.

    Only the SHA-256 of the token is stored. ``active_tenant_id`` is the tenant the session acts
    in (a session attribute, not ownership: the table belongs to the user, not to a tenant). It
    references the tenant with ``ON DELETE CASCADE``: a tenant's deletion ends the sessions
    acting in it, those a rotation in flight meanwhile inserts included.
    """

    __tablename__ = "backplane_refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("backplane_users.id", ondelete="CASCADE"), index=True
    )
    active_tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("backplane_tenants.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """The user's ``session_epoch`` when the family began; a later epoch refuses the token,
    even one inserted by a rotation that raced the password change."""


class ApiKey(TenantScoped, Base):
    """An API key of a tenant: ``bp_<id>_<secret>``, stored as an HMAC of the secret."""

    __tablename__ = "backplane_api_keys"
    __table_args__ = (
        CheckConstraint(f"role IN {ROLES!r}", name="role"),
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    digest: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("backplane_users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RevokedAccessToken(Base):
    """A logged-out access token's ``jti``, kept until the token would have expired anyway."""

    __tablename__ = "backplane_revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class PlatformOperator(Base):
    """A user who runs the deployment, not a tenant: they hold every ``platform.*`` permission
    code (declared through ``register_permissions``) whichever tenant they act in. Granted and
    revoked only by the ``backplane operators`` command, never over HTTP: the database is the
    trust root, as for every other deployment-level setting."""

    __tablename__ = "backplane_platform_operators"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("backplane_users.id", ondelete="CASCADE"), primary_key=True
    )
    granted_by: Mapped[str] = mapped_column(String(200))
    """The login name of whoever ran the grant command (from the audit actor)."""
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
