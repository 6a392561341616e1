"""Login sessions: token pairs, refresh-token rotation and reuse detection, ending sessions.

A session is a refresh-token family. Each rotation marks the presented token used and adds the
next one to the family; presenting a used token again is reuse and revokes the whole family,
including tokens a concurrent winner just received (one of two racing holders is a thief, and
which one cannot be told); access tokens already issued live out their ``auth.access_ttl_s``.
A user's ``session_epoch`` ends all their sessions at once: tokens of both kinds carry the
epoch they were issued in, and older ones are refused.

Every function takes the caller's *maintenance* session (a user's memberships cross tenants),
one per request, so that a login or a refresh never holds two pooled connections.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.audit.actor import Actor, current_address
from backplane.audit.record import record as audit
from backplane.identity.auth import SESSION_EPOCH_CLAIM
from backplane.identity.models import Membership, RefreshToken, Tenant, User
from backplane.identity.runtime import Identity
from backplane.identity.schemas import TokenPair
from backplane.identity.tokens import hash_opaque_token, new_opaque_token

REFRESH_PREFIX = "bprt"


async def memberships_of(
    session: AsyncSession, user_id: uuid.UUID
) -> list[tuple[Membership, Tenant]]:
    """Every tenant the user belongs to."""
    rows = await session.execute(
        select(Membership, Tenant)
        .join(Tenant, Tenant.id == Membership.tenant_id)
        .where(Membership.user_id == user_id)
        .order_by(Membership.created_at, Tenant.slug)
    )
    return [(m, t) for m, t in rows.tuples()]


async def choose_membership(
    session: AsyncSession, user_id: uuid.UUID, tenant: str | None
) -> tuple[Membership, Tenant]:
    """The membership to act with: the named tenant (slug or id) or the first one."""
    memberships = await memberships_of(session, user_id)
    if not memberships:
        raise PermissionDeniedException("this account belongs to no tenant")
    if tenant is None:
        return memberships[0]
    for membership, row in memberships:
        if tenant in (row.slug, str(row.id)):
            return membership, row
    raise PermissionDeniedException(f"not a member of tenant {tenant!r}")


async def issue_pair(
    identity: Identity,
    session: AsyncSession,
    user_id: uuid.UUID,
    membership: Membership,
    family_id: uuid.UUID | None = None,
) -> TokenPair:
    """A new access and refresh token (in ``family_id``, or a new family) in the user's current
    session epoch."""
    await identity.refresh_keyring()
    epoch = await session.scalar(select(User.session_epoch).where(User.id == user_id)) or 0
    issued = identity.tokens.issue_access_token(
        user_id=str(user_id),
        tenant_id=str(membership.tenant_id),
        extra={"role": membership.role, SESSION_EPOCH_CLAIM: epoch},
    )
    refresh, digest = new_opaque_token(REFRESH_PREFIX)
    session.add(
        RefreshToken(
            token_hash=digest,
            family_id=family_id or uuid.uuid4(),
            user_id=user_id,
            active_tenant_id=membership.tenant_id,
            expires_at=datetime.now(UTC) + timedelta(seconds=identity.settings.auth.refresh_ttl_s),
            session_epoch=epoch,
        )
    )
    return TokenPair(
        access_token=issued.token,
        refresh_token=refresh,
        token_type="Bearer",  # noqa: S106 - the OAuth token type, not a secret
        expires_in=identity.settings.auth.access_ttl_s,
        tenant_id=membership.tenant_id,
        role=membership.role,
    )


async def rotate_refresh_token(identity: Identity, session: AsyncSession, token: str) -> TokenPair:
    """Exchange a refresh token for a new pair; any other use of it revokes its whole family.
    Marking it used is one conditional ``UPDATE`` only one caller wins: the others wait for the
    winner's commit (PostgreSQL's row lock, SQLite's write lock) and find it used (reuse)."""
    now = datetime.now(UTC)
    digest = hash_opaque_token(token)
    claimed = (
        await session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == digest,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(used_at=now)
            .returning(
                RefreshToken.family_id,
                RefreshToken.user_id,
                RefreshToken.active_tenant_id,
                RefreshToken.expires_at,
                RefreshToken.session_epoch,
            )
            .execution_options(synchronize_session=False)
        )
    ).first()
    if claimed is None:
        row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest))
        if row is None or row.revoked_at is not None:
            raise NotAuthorizedException("invalid refresh token")
        await revoke_family(session, row.family_id)
        await _audit_reuse(session, row)
        await session.commit()  # the revocation must stick although the request fails
        raise NotAuthorizedException("refresh token reuse detected: the session was revoked")
    family_id, user_id, tenant_id, expires_at, epoch = claimed
    if expires_at <= now:
        raise NotAuthorizedException("refresh token expired")
    current = await session.scalar(select(User.session_epoch).where(User.id == user_id))
    if current is None or epoch < current:
        await revoke_family(session, family_id)
        await session.commit()
        raise NotAuthorizedException("the session ended (the password was changed)")
    for membership, _tenant in await memberships_of(session, user_id):
        if membership.tenant_id == tenant_id:
            return await issue_pair(identity, session, user_id, membership, family_id)
    await revoke_family(session, family_id)
    await session.commit()
    raise NotAuthorizedException("no longer a member of the session's tenant")


async def _audit_reuse(session: AsyncSession, row: RefreshToken) -> None:
    """Reuse goes to the audit trail of the session's tenant (if it still exists); the actor
    is the token's user, whoever presented it (a thief or the user, which cannot be told)."""
    tenant = row.active_tenant_id
    if tenant is None or await session.get(Tenant, tenant) is None:
        return
    await audit(
        session,
        "auth.refresh_reuse",
        tenant_id=tenant,
        target=("session", row.family_id),
        actor=Actor(kind="user", id=str(row.user_id), address=current_address()),
    )


async def revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )


async def end_sessions(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Revoke all the user's refresh tokens and raise their session epoch, which refuses every
    access token issued before (at once where the cached memberships are forgotten, elsewhere
    within ``auth.REVALIDATE_S``)."""
    await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(session_epoch=User.session_epoch + 1)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )


async def family_of(session: AsyncSession, token: str) -> uuid.UUID | None:
    row = await session.scalar(
        select(RefreshToken.family_id).where(RefreshToken.token_hash == hash_opaque_token(token))
    )
    return row
