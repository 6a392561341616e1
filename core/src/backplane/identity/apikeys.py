"""Creating API keys (the HTTP route, the CLI and demo data share this)."""

from __future__ import annotations

import uuid
from collections.abc import Set
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from backplane.audit.record import record as audit
from backplane.db.locks import lock_row
from backplane.identity.models import ROLES, ApiKey, Tenant
from backplane.identity.schemas import ApiKeyCreated
from backplane.identity.tenants import IdentityError, LimitReachedError, count
from backplane.identity.tokens import api_key_digest, new_api_key


def check_scopes(scopes: list[str], known: Set[str]) -> list[str]:
    """The scopes, deduplicated and sorted, if each is a registered permission code."""
    unknown = sorted(set(scopes) - known)
    if unknown:
        raise IdentityError(
            f"unknown scope(s) {', '.join(map(repr, unknown))}: a scope is a permission code "
            f"({', '.join(sorted(known))})"
        )
    return sorted(set(scopes))


async def create_api_key(
    session: AsyncSession,
    server_secret: str,
    *,
    tenant_id: uuid.UUID,
    name: str,
    role: str = "member",
    scopes: list[str] | None = None,
    created_by: uuid.UUID | None = None,
    expires_at: datetime | None = None,
    max_keys: int | None = None,
) -> ApiKeyCreated:
    """Store a new key's HMAC and return the full key, which is never retrievable again.
    ``scopes`` are not checked (:func:`check_scopes` is the caller's). ``max_keys`` caps the
    tenant's unrevoked keys atomically: its row stays locked until the transaction ends."""
    if role not in ROLES:
        raise IdentityError(f"role must be one of {', '.join(ROLES)}")
    stored = sorted(set(scopes or []))
    if max_keys is not None:
        await lock_row(session, Tenant, tenant_id)
        held = await count(
            session, ApiKey, ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None)
        )
        if held >= max_keys:
            raise LimitReachedError(
                f"the tenant already holds {held} API keys; the limit is {max_keys} "
                "(auth.max_api_keys_per_tenant): revoke unused keys first"
            )
    parts = new_api_key()
    session.add(
        ApiKey(
            id=parts.key_id,
            tenant_id=tenant_id,
            name=name,
            role=role,
            scopes=stored,
            digest=api_key_digest(parts.secret, server_secret),
            created_by=created_by,
            expires_at=expires_at,
        )
    )
    await session.flush()
    details = {"name": name, "role": role, "scopes": stored}
    await audit(
        session,
        "apikey.created",
        tenant_id=tenant_id,
        target=("api_key", parts.key_id),
        details=details,
    )
    return ApiKeyCreated(
        id=parts.key_id, key=parts.full, name=name, role=role, scopes=stored, expires_at=expires_at
    )
