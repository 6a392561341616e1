"""Members of a tenant as plugins see them (``kernel.member``): who a user id or an email
address is in this tenant, and nothing of any other tenant's people."""

from __future__ import annotations

import uuid

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.identity.models import Membership, User
from backplane.identity.tenants import normalise_email


class Member(msgspec.Struct, frozen=True, kw_only=True):
    """A member of the tenant: their user id, address and membership role."""

    user_id: uuid.UUID
    email: str
    role: str


async def find_member(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    user_id: uuid.UUID | None = None,
    email: str | None = None,
) -> Member | None:
    """The member of ``tenant_id`` named by ``user_id`` or ``email`` (exactly one of them);
    None when that person is nobody here, even if they are a user of another tenant.
    :class:`ValueError` for a malformed address."""
    if (user_id is None) == (email is None):
        raise ValueError("name the member by user_id or by email, not both or neither")
    query = (
        select(User.id, User.email, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == tenant_id)
    )
    if user_id is not None:
        query = query.where(User.id == user_id)
    else:
        query = query.where(User.email == normalise_email(email or ""))
    row = (await session.execute(query)).first()
    return None if row is None else Member(user_id=row[0], email=row[1], role=row[2])
