"""One-time tokens of the account flows: issued (the plain token goes into a mailed link, only
its SHA-256 is stored), looked at without being used (``peek``), and used exactly once
(``consume``: one conditional ``UPDATE``, which exactly one of concurrent uses wins)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.accounts.models import AccountToken, Invite
from backplane.identity.tokens import hash_opaque_token, new_opaque_token

PREFIXES = {"reset": "bprst", "verify": "bpver", "invite": "bpinv"}
MAX_TOKEN_LENGTH = 200


class InvalidLinkError(ValueError):
    """The link's token is unknown, used, revoked or expired (one message for all: which one
    is nobody's business but the database's)."""

    def __init__(self) -> None:
        super().__init__("this link is invalid, expired or was already used")


def link(base_url: str, path: str, token: str) -> str:
    """``<mail.link_base_url><path>?token=<token>``."""
    return f"{base_url.rstrip('/')}{path}?{urlencode({'token': token})}"


def _digest(token: str) -> str:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidLinkError
    return hash_opaque_token(token)


def issue_user_token(
    session: AsyncSession, purpose: str, user_id: uuid.UUID, email: str, ttl_s: int
) -> str:
    """Add a token of ``purpose`` for the user (in the caller's transaction); the plain token."""
    token, digest = new_opaque_token(PREFIXES[purpose])
    now = datetime.now(UTC)
    session.add(
        AccountToken(
            purpose=purpose,
            token_hash=digest,
            user_id=user_id,
            email=email,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
    )
    return token


def _usable_token(purpose: str, digest: str, now: datetime) -> Any:
    return (
        AccountToken.purpose == purpose,
        AccountToken.token_hash == digest,
        AccountToken.used_at.is_(None),
        AccountToken.expires_at > now,
    )


async def peek_user_token(session: AsyncSession, purpose: str, token: str) -> AccountToken:
    """The usable token row (not used up), or :class:`InvalidLinkError`."""
    where = _usable_token(purpose, _digest(token), datetime.now(UTC))
    row = await session.scalar(select(AccountToken).where(*where))
    if row is None:
        raise InvalidLinkError
    return row


async def consume_user_token(
    session: AsyncSession, purpose: str, token: str
) -> tuple[uuid.UUID, str]:
    """Use the token up; its ``(user_id, email)``, or :class:`InvalidLinkError` (also for the
    loser of a race: it waits for the winner's commit and finds the token used)."""
    now = datetime.now(UTC)
    found = (
        await session.execute(
            update(AccountToken)
            .where(*_usable_token(purpose, _digest(token), now))
            .values(used_at=now)
            .returning(AccountToken.user_id, AccountToken.email)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if found is None:
        raise InvalidLinkError
    return found[0], found[1]


def issue_invite(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    email: str,
    role: str,
    invited_by: uuid.UUID | None,
    ttl_s: int,
) -> tuple[Invite, str]:
    """Add an invitation (in the caller's transaction); it and its plain token."""
    token, digest = new_opaque_token(PREFIXES["invite"])
    now = datetime.now(UTC)
    invite = Invite(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        token_hash=digest,
        email=email,
        role=role,
        invited_by=invited_by,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
    )
    session.add(invite)
    return invite, token


def _open_invite(digest: str, now: datetime) -> Any:
    return (
        Invite.token_hash == digest,
        Invite.accepted_at.is_(None),
        Invite.revoked_at.is_(None),
        Invite.expires_at > now,
    )


async def peek_invite(session: AsyncSession, token: str) -> Invite:
    """The open invitation (``session`` sees every tenant), or :class:`InvalidLinkError`."""
    row = await session.scalar(
        select(Invite).where(*_open_invite(_digest(token), datetime.now(UTC)))
    )
    if row is None:
        raise InvalidLinkError
    return row


async def consume_invite(session: AsyncSession, token: str) -> uuid.UUID:
    """Mark the invitation accepted; its id, or :class:`InvalidLinkError` (the loser of a race
    included: it waits for the winner's commit and finds the invitation accepted)."""
    now = datetime.now(UTC)
    found = (
        await session.execute(
            update(Invite)
            .where(*_open_invite(_digest(token), now))
            .values(accepted_at=now)
            .returning(Invite.id)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if found is None:
        raise InvalidLinkError
    invite_id: uuid.UUID = found[0]
    return invite_id
