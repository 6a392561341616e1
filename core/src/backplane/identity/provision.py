"""Creating a tenant with its owner and a first API key: the operator CLI, demo data and the
test fixtures all do this, so they share one implementation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backplane.identity.apikeys import create_api_key
from backplane.identity.models import Tenant, User
from backplane.identity.passwords import PasswordHasher, PasswordSettings
from backplane.identity.schemas import ApiKeyCreated
from backplane.identity.tenants import create_tenant
from backplane.settings import Settings


def hasher_for(settings: Settings) -> PasswordHasher:
    """A password hasher with the installation's configured cost (close it when done)."""
    auth = settings.auth
    return PasswordHasher(
        PasswordSettings(
            time_cost=auth.password_time_cost,
            memory_cost_kib=auth.password_memory_kib,
            max_concurrency=auth.password_max_concurrency,
            min_length=auth.password_min_length,
        )
    )


@dataclass
class ProvisionedTenant:
    tenant: Tenant
    owner: User
    api_key: ApiKeyCreated
    """Its ``key`` is shown once; only an HMAC of the secret is stored."""


async def provision_tenant(
    session: AsyncSession,
    kernel: Any,
    *,
    server_secret: str,
    slug: str,
    owner_email: str,
    name: str | None = None,
    password: str | None = None,
    key_name: str = "first key",
    key_role: str = "owner",
) -> ProvisionedTenant:
    """Tenant ``slug``, its owner (with ``password`` if given) and an API key, in ``session``
    (``kernel``: the caller's :class:`backplane.Kernel`, for the ``tenant_created`` hooks;
    ``server_secret`` signs the key)."""
    settings = kernel.settings
    tenant, owner = await create_tenant(
        session, kernel, slug=slug, owner_email=owner_email, name=name
    )
    if password is not None:
        hasher = hasher_for(settings)
        try:
            owner.password_hash = await hasher.hash(password)
        finally:
            hasher.close()
    key = await create_api_key(
        session,
        server_secret,
        tenant_id=tenant.id,
        name=key_name,
        role=key_role,
        created_by=owner.id,
    )
    return ProvisionedTenant(tenant=tenant, owner=owner, api_key=key)
