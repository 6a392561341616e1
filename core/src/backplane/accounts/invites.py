"""Invitations: a tenant's members manager invites an address with a role; the link's holder
sees the invitation and accepts it, which creates the account (with the password given) or
links the existing one to the tenant. Accepting proves control of the address, so it counts
as a verification of it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotFoundException,
    PermissionDeniedException,
)
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT, HTTP_409_CONFLICT
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.accounts.mails import invite_mail
from backplane.accounts.models import Invite
from backplane.accounts.schemas import (
    AcceptInvite,
    InvitationOut,
    InviteAccepted,
    InviteIn,
    InviteOut,
    LinkToken,
)
from backplane.accounts.tokens import (
    InvalidLinkError,
    consume_invite,
    issue_invite,
    link,
    peek_invite,
)
from backplane.audit.actor import Actor, current_address
from backplane.audit.record import record as audit
from backplane.identity import sessions, tenants
from backplane.identity.auth import PUBLIC_OPT, Principal, requires
from backplane.identity.models import ROLE_RANK, Membership, Tenant, User
from backplane.kernel import Kernel
from backplane.mail.compose import MailError
from backplane.state import rails_of
from backplane.web import NO_CACHE, NO_STORE

Req = Request[Principal, Any, Any]
ACCEPT_PATH = "/api/auth/invites/accept"
PUBLIC = {PUBLIC_OPT: True}


class InvitesController(Controller):
    """The caller's tenant's invitations (``tenant.members.manage``)."""

    path = "/tenant/invites"
    tags = ["tenant"]
    guards = [requires("tenant.members.manage")]

    @post("/", status_code=HTTP_201_CREATED, summary="Invite an address to join the tenant")
    async def invite(
        self,
        request: Req,
        data: JSONBody[InviteIn],
        db: NamedDependency[AsyncSession],
        kernel: NamedDependency[Kernel],
    ) -> InviteOut:
        principal = request.user
        await _may_invite(request, data.role)
        try:
            email = tenants.normalise_email(data.email)
        except tenants.IdentityError as exc:
            raise ClientException(str(exc)) from None
        member = await db.scalar(
            select(Membership.id)
            .join(User, User.id == Membership.user_id)
            .where(User.email == email)
        )
        if member is not None:
            raise HTTPException(
                status_code=HTTP_409_CONFLICT, detail=f"{email} is a member already"
            )
        config = kernel.settings.mail
        tenant = await db.get(Tenant, principal.tenant_id)
        assert tenant is not None  # the caller's own
        invite, token = issue_invite(
            db, principal.tenant_id, email, data.role, principal.user_id, config.invite_ttl_s
        )
        url = link(config.link_base_url, ACCEPT_PATH, token)
        subject, text = invite_mail(tenant.name, data.role, url, config.invite_ttl_s)
        try:
            await kernel.mail.send(email, subject, text)
        except MailError as exc:
            raise ClientException(str(exc)) from None
        await db.flush()
        return msgspec.convert(invite, InviteOut, from_attributes=True)

    @get("/", summary="The tenant's invitations, newest first")
    async def list_invites(
        self,
        db: NamedDependency[AsyncSession],
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[InviteOut]:
        rows = await db.scalars(select(Invite).order_by(Invite.created_at.desc()).limit(limit))
        return [msgspec.convert(r, InviteOut, from_attributes=True) for r in rows]

    @delete("/{invite_id:uuid}", status_code=HTTP_204_NO_CONTENT, summary="Revoke an invitation")
    async def revoke(
        self, invite_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> None:
        done: Any = await db.execute(
            update(Invite)
            .where(Invite.id == invite_id, Invite.accepted_at.is_(None))
            .values(revoked_at=func.coalesce(Invite.revoked_at, datetime.now(UTC)))
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:
            raise NotFoundException("no such open invitation")


async def _may_invite(request: Req, role: str) -> None:
    """As for adding a member: nobody invites above their own role, and a scoped API key only
    to roles whose permissions it holds (else it could hand out more than it has)."""
    principal = request.user
    if ROLE_RANK.get(role, 99) > ROLE_RANK.get(principal.role, -1):
        raise PermissionDeniedException(f"a {principal.role} cannot invite a {role}")
    if principal.scoped:
        identity = await rails_of(request).identity.get()
        held = identity.authenticator.role_permissions.get(role, frozenset())
        missing = sorted(held - principal.permissions)
        if missing:
            raise PermissionDeniedException(
                f"this key's scopes lack {', '.join(missing)}, which the {role} role holds"
            )


def _invalid(exc: InvalidLinkError) -> ClientException:
    return ClientException(str(exc))


class AcceptInviteController(Controller):
    """Public: the link's token is the credential."""

    path = "/auth/invites"
    tags = ["auth"]

    @get("/accept", opt=PUBLIC, summary="What an invitation link offers (does not use it)")
    async def show(self, request: Request[Any, Any, Any], token: LinkToken) -> InvitationOut:
        database = rails_of(request).database
        async with database.maintenance("an invitation link is looked at", audit=False) as session:
            try:
                invite = await peek_invite(session, token)
            except InvalidLinkError as exc:
                raise _invalid(exc) from None
            tenant = await session.get(Tenant, invite.tenant_id)
            user = await session.scalar(select(User.id).where(User.email == invite.email))
        assert tenant is not None  # invitations cascade with their tenant
        return InvitationOut(
            tenant_slug=tenant.slug,
            tenant_name=tenant.name,
            email=invite.email,
            role=invite.role,
            expires_at=invite.expires_at,
            account_exists=user is not None,
        )

    @post(
        "/accept",
        opt=PUBLIC,
        status_code=200,
        cache_control=NO_STORE,
        response_headers=NO_CACHE,
        summary="Accept an invitation: create the account, or link the existing one",
    )
    async def accept(
        self, request: Request[Any, Any, Any], data: JSONBody[AcceptInvite]
    ) -> InviteAccepted:
        rails = rails_of(request)
        identity = await rails.identity.get()
        reason = "an invitation is accepted"
        async with rails.database.maintenance(reason, audit=False) as session:
            try:
                invite = await peek_invite(session, data.token)
            except InvalidLinkError as exc:
                raise _invalid(exc) from None
            user = await session.scalar(select(User).where(User.email == invite.email))
        new_hash = None
        if user is None:  # hashed before the transaction: no connection held meanwhile
            if not data.password:
                raise ClientException("this address has no account yet: choose a password")
            problems = identity.hasher.check_policy(data.password, email=invite.email)
            if problems:
                raise ClientException("password refused: " + "; ".join(problems))
            new_hash = await identity.hasher.hash(data.password)
        async with rails.database.maintenance(reason) as session, session.begin():
            try:  # first: of concurrent uses, the others wait here and find it accepted
                invite_id = await consume_invite(session, data.token)
            except InvalidLinkError as exc:
                raise _invalid(exc) from None
            if user is None:
                user = User(email=invite.email, password_hash=new_hash, is_active=True)
                session.add(user)
                try:
                    await session.flush()
                except IntegrityError:  # created meanwhile by another invitation's acceptance
                    raise HTTPException(
                        status_code=HTTP_409_CONFLICT,
                        detail="the account was created meanwhile; open the link again",
                    ) from None
            await session.execute(
                update(Invite).where(Invite.id == invite_id).values(accepted_by=user.id)
            )
            await session.execute(
                update(User)
                .where(User.id == user.id, User.email_verified_at.is_(None))
                .values(email_verified_at=datetime.now(UTC))
            )
            membership = await session.scalar(
                select(Membership).where(
                    Membership.tenant_id == invite.tenant_id, Membership.user_id == user.id
                )
            )
            if membership is None:  # an existing member keeps the role they have
                membership = Membership(
                    tenant_id=invite.tenant_id, user_id=user.id, role=invite.role
                )
                session.add(membership)
                await session.flush()
                await audit(
                    session,
                    "member.added",
                    tenant_id=invite.tenant_id,
                    target=("user", user.id),
                    details={"role": invite.role, "invite": str(invite_id)},
                    actor=Actor(kind="user", id=str(user.id), address=current_address()),
                )
            identity.authenticator.forget_membership(user.id, invite.tenant_id)
            tenant = await session.get(Tenant, invite.tenant_id)
            assert tenant is not None
            pair = None
            if new_hash is not None:
                pair = await sessions.issue_pair(identity, session, user.id, membership)
            return InviteAccepted(
                tenant_id=tenant.id,
                tenant_slug=tenant.slug,
                user_id=user.id,
                role=membership.role,
                created_account=new_hash is not None,
                tokens=pair,
            )


ROUTES: list[Any] = [InvitesController, AcceptInviteController]
