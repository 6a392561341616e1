"""Creating API keys (the HTTP route, the CLI and demo data share this)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from backplane.identity.models import ROLES, ApiKey
from backplane.identity.schemas import ApiKeyCreated
from backplane.identity.tenants import IdentityError
from backplane.identity.tokens import api_key_digest, new_api_key


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
) -> ApiKeyCreated:
    """Store a new key's HMAC and return the full key, which is never retrievable again."""
    if role not in ROLES:
        raise IdentityError(f"role must be one of {', '.join(ROLES)}")
    parts = new_api_key()
    session.add(
        ApiKey(
            id=parts.key_id,
            tenant_id=tenant_id,
            name=name,
            role=role,
            scopes=scopes or [],
            digest=api_key_digest(parts.secret, server_secret),
            created_by=created_by,
            expires_at=expires_at,
        )
    )
    await session.flush()
    return ApiKeyCreated(
        id=parts.key_id, key=parts.full, name=name, role=role, expires_at=expires_at
    )
