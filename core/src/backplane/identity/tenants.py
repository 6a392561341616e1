"""Tenant administration: creating tenants with their owner, members and roles, plugin switches.

These functions take an ``AsyncSession`` the caller controls (one transaction per operation) and
the loaded plugins (for the ``tenant_created`` and ``plugin_enabled`` hooks). Operator paths (the
CLI) call them on a session that bypasses tenancy with an audited reason; HTTP paths call them
on a session bound to the caller's tenant.
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.identity.models import ROLES, Membership, Tenant, TenantPlugin, User
from backplane.plugins import KERNEL_PLUGIN, PluginSet

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")


class IdentityError(ValueError):
    """An identity operation was refused; the message says why (shown to the caller)."""


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_PATTERN.match(email):
        raise IdentityError(f"{email!r} is not an email address")
    return email


async def get_or_create_user(session: AsyncSession, email: str) -> User:
    email = normalise_email(email)
    user = await session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, is_active=True)
        session.add(user)
        await session.flush()
    return user


async def create_tenant(
    session: AsyncSession,
    plugins: PluginSet,
    *,
    slug: str,
    owner_email: str,
    name: str | None = None,
) -> tuple[Tenant, User]:
    """Create tenant ``slug`` with ``owner_email`` as its owner; fire ``tenant_created``."""
    if not SLUG_PATTERN.match(slug):
        raise IdentityError(
            f"tenant slug {slug!r} must be 2-63 lower-case letters, digits or hyphens"
        )
    if await session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
        raise IdentityError(f"a tenant with slug {slug!r} already exists")
    owner = await get_or_create_user(session, owner_email)
    tenant = Tenant(slug=slug, name=name or slug)
    session.add(tenant)
    await session.flush()
    session.add(Membership(tenant_id=tenant.id, user_id=owner.id, role="owner"))
    await session.flush()
    await plugins.acall("tenant_created", tenant=tenant)
    return tenant, owner


async def tenant_by_slug(session: AsyncSession, slug: str) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise IdentityError(f"no tenant with slug {slug!r}")
    return tenant


async def set_member_role(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, role: str | None
) -> None:
    """Add, change (``role``) or remove (``None``) a membership; the last owner stays."""
    if role is not None and role not in ROLES:
        raise IdentityError(f"role must be one of {', '.join(ROLES)}")
    membership = await session.scalar(
        select(Membership).where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
    )
    if membership is not None and membership.role == "owner" and role != "owner":
        owners = await session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(Membership.tenant_id == tenant_id, Membership.role == "owner")
        )
        if (owners or 0) <= 1:
            raise IdentityError("the last owner of a tenant cannot be removed or demoted")
    if role is None:
        if membership is not None:
            await session.delete(membership)
    elif membership is None:
        session.add(Membership(tenant_id=tenant_id, user_id=user_id, role=role))
    else:
        membership.role = role
    await session.flush()


async def set_plugin_enabled(
    session: AsyncSession, plugins: PluginSet, tenant: Tenant, plugin: str, enabled: bool
) -> None:
    """Switch an installed plugin on or off for ``tenant``; fire ``plugin_enabled`` on enable."""
    if plugin == KERNEL_PLUGIN or plugin not in plugins.loaded:
        raise IdentityError(f"{plugin!r} is not an installed, loaded plugin")
    row = await session.get(TenantPlugin, {"tenant_id": tenant.id, "plugin": plugin})
    if row is None:
        session.add(TenantPlugin(tenant_id=tenant.id, plugin=plugin, enabled=enabled))
    else:
        row.enabled = enabled
    await session.flush()
    if enabled:
        await plugins.acall("plugin_enabled", tenant=tenant, name=plugin)


async def enabled_plugins(
    session: AsyncSession, plugins: PluginSet, tenant_id: uuid.UUID
) -> dict[str, bool]:
    """Every loaded plugin with whether ``tenant_id`` has it on (default: on)."""
    rows = await session.scalars(select(TenantPlugin).where(TenantPlugin.tenant_id == tenant_id))
    switches = {row.plugin: row.enabled for row in rows}
    return {name: switches.get(name, True) for name in plugins.loaded if name != KERNEL_PLUGIN}
