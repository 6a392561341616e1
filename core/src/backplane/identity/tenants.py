"""Tenant administration: creating tenants with their owner, members and roles, plugin switches.

These take a session the caller controls (one transaction per operation: a maintenance session
with an audited reason from the CLI, the caller's tenant's from HTTP) and the caller's
:class:`backplane.Kernel`, whose ``tenant_created`` and ``plugin_enabled`` hooks they fire.
"""

from __future__ import annotations

import re
import secrets
import string
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from backplane.audit.record import record as audit
from backplane.identity.models import ROLES, ApiKey, Membership, Tenant, TenantPlugin, User
from backplane.plugins import KERNEL_PLUGIN

# Anchored with \Z: ``$`` also matches before a trailing newline ("acme\n" was a valid slug).
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}\Z")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}\Z")
SLUG_SUFFIX_LENGTH = 4
"""``acme-7k2q``: 36**4 (1.7 million) suffixes per slug, tried at random."""
SLUG_ATTEMPTS = 8
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


class IdentityError(ValueError):
    """An identity operation was refused; the message says why (shown to the caller)."""


class LimitReachedError(IdentityError):
    """A configured cap (``auth.max_*``) was reached; the message names it."""


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_PATTERN.match(email):
        raise IdentityError(f"{email!r} is not an email address")
    return email


def check_slug(slug: str) -> str:
    """``slug`` if it is a valid tenant slug, else :class:`IdentityError` (quoting it with
    ``repr``, so that control characters never reach a log or an answer raw)."""
    if not SLUG_PATTERN.match(slug):
        raise IdentityError(
            f"tenant slug {slug!r} must be 2-63 lower-case letters, digits or hyphens"
        )
    return slug


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
    kernel: Any,
    *,
    slug: str,
    owner_email: str,
    name: str | None = None,
    if_taken: Literal["refuse", "suffix"] = "refuse",
) -> tuple[Tenant, User]:
    """Create tenant ``slug`` owned by ``owner_email``. A taken slug is refused, or with
    ``if_taken="suffix"`` given a random suffix (``acme-7k2q``): self-service creation must not
    tell a caller which slugs other tenants use. The name defaults to the slug asked for."""
    chosen = await _free_slug(session, check_slug(slug), suffix=if_taken == "suffix")
    owner = await get_or_create_user(session, owner_email)
    tenant = Tenant(slug=chosen, name=name or slug)
    session.add(tenant)
    await session.flush()
    session.add(Membership(tenant_id=tenant.id, user_id=owner.id, role="owner"))
    await session.flush()
    details = {"slug": chosen, "owner": str(owner.id)}
    await audit(
        session,
        "tenant.created",
        tenant_id=tenant.id,
        target=("tenant", tenant.id),
        details=details,
    )
    await kernel.notify("tenant_created", session=session, tenant_id=tenant.id, tenant=tenant)
    return tenant, owner


async def _free_slug(session: AsyncSession, slug: str, *, suffix: bool) -> str:
    candidate = slug
    for _ in range(SLUG_ATTEMPTS):
        if await session.scalar(select(Tenant.id).where(Tenant.slug == candidate)) is None:
            return candidate
        if not suffix:
            raise IdentityError(f"a tenant with slug {slug!r} already exists")
        random = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(SLUG_SUFFIX_LENGTH))
        candidate = f"{slug[: 63 - SLUG_SUFFIX_LENGTH - 1]}-{random}"
    raise IdentityError(f"no free slug like {slug!r} found; choose another")


async def check_owned_tenants(session: AsyncSession, user_id: uuid.UUID, limit: int) -> None:
    """:class:`LimitReachedError` if the user owns ``limit`` tenants (a maintenance session;
    atomic only if the caller locked the user's row first)."""
    owned = await count(
        session, Membership, Membership.user_id == user_id, Membership.role == "owner"
    )
    if owned >= limit:
        raise LimitReachedError(
            f"you already own {owned} tenants; the limit is {limit} (auth.max_tenants_per_user)"
        )


async def count(session: AsyncSession, model: type[Any], *where: ColumnElement[bool]) -> int:
    return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def tenant_by_slug(session: AsyncSession, slug: str) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise IdentityError(f"no tenant with slug {slug!r}")
    return tenant


async def set_member_role(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, role: str | None
) -> list[str]:
    """Add, change (``role``) or remove (``None``) a membership; the last owner stays. Removing
    a member revokes the API keys they created in the tenant for good (a key must not outlive
    its creator's membership); their ids are returned, for the caller's caches."""
    if role is not None and role not in ROLES:
        raise IdentityError(f"role must be one of {', '.join(ROLES)}")
    membership = await session.scalar(
        select(Membership).where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
    )
    if membership is not None and membership.role == "owner" and role != "owner":
        owners = Membership.tenant_id == tenant_id, Membership.role == "owner"
        if await count(session, Membership, *owners) <= 1:
            raise IdentityError("the last owner of a tenant cannot be removed or demoted")
    revoked: list[str] = []
    before = membership.role if membership is not None else None
    if role is None:
        if membership is not None:
            await session.delete(membership)
            rows = await session.execute(
                update(ApiKey)
                .where(
                    ApiKey.tenant_id == tenant_id,
                    ApiKey.created_by == user_id,
                    ApiKey.revoked_at.is_(None),
                )
                .values(revoked_at=datetime.now(UTC))
                .returning(ApiKey.id)
                .execution_options(synchronize_session=False)
            )
            revoked = list(rows.scalars())
    elif membership is None:
        session.add(Membership(tenant_id=tenant_id, user_id=user_id, role=role))
    else:
        membership.role = role
    await session.flush()
    await _audit_membership(session, tenant_id, user_id, before, role, revoked)
    return revoked


async def _audit_membership(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    before: str | None,
    after: str | None,
    revoked: list[str],
) -> None:
    """The audit rows of a membership change (none when nothing changed)."""
    target = ("user", user_id)
    details: dict[str, object]
    if before is None and after is not None:
        await audit(
            session, "member.added", tenant_id=tenant_id, target=target, details={"role": after}
        )
    elif before is not None and after is None:
        details = {"role": before, "revoked_api_keys": revoked}
        await audit(session, "member.removed", tenant_id=tenant_id, target=target, details=details)
        for key_id in revoked:
            why = {"reason": "its creator left the tenant"}
            await audit(
                session,
                "apikey.revoked",
                tenant_id=tenant_id,
                target=("api_key", key_id),
                details=why,
            )
    elif before != after:
        details = {"from": before, "to": after}
        await audit(
            session, "member.role_changed", tenant_id=tenant_id, target=target, details=details
        )


async def set_plugin_enabled(
    session: AsyncSession, kernel: Any, tenant: Tenant, plugin: str, enabled: bool
) -> None:
    """Switch an installed plugin on or off for ``tenant``; fire ``plugin_enabled`` on enable
    (``kernel``: a :class:`backplane.Kernel`, whose plugins are asked)."""
    loaded = {r.name for r in kernel.plugins if r.status == "loaded"}
    if plugin == KERNEL_PLUGIN or plugin not in loaded:
        raise IdentityError(f"{plugin!r} is not an installed, loaded plugin")
    row = await session.get(TenantPlugin, {"tenant_id": tenant.id, "plugin": plugin})
    if row is None:
        session.add(TenantPlugin(tenant_id=tenant.id, plugin=plugin, enabled=enabled))
    else:
        row.enabled = enabled
    await session.flush()
    action = "plugin.enabled" if enabled else "plugin.disabled"
    await audit(session, action, tenant_id=tenant.id, target=("plugin", plugin))
    if enabled:
        await kernel.notify(
            "plugin_enabled", session=session, tenant_id=tenant.id, tenant=tenant, name=plugin
        )


async def enabled_plugins(
    session: AsyncSession, kernel: Any, tenant_id: uuid.UUID
) -> dict[str, bool]:
    """Every loaded plugin with whether ``tenant_id`` has it on (default: on)."""
    rows = await session.scalars(select(TenantPlugin).where(TenantPlugin.tenant_id == tenant_id))
    switches = {row.plugin: row.enabled for row in rows}
    loaded = [r.name for r in kernel.plugins if r.status == "loaded" and r.name != KERNEL_PLUGIN]
    return {name: switches.get(name, True) for name in loaded}
