"""Password reset by e-mail, without revealing which addresses have an account.

``POST /api/auth/password-reset`` does the same work for every well-formed address: it queues
one task (an outbox row, one commit) and answers 202 with one fixed body. Whether an account
exists is decided in the task (:func:`mail_password_reset`), which mails a one-time link only
to an active account's address; the answer, its status and its timing cannot tell.
At most one link is mailed per account every ``mail.reset_interval_s``, so the public request
cannot flood a mailbox. Completing the reset sets the password, uses up every other reset link
of the account, marks the address verified (the link proved it) and ends every session of the
account (its session epoch: access and refresh tokens issued before are refused).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Controller, Request, get, post
from litestar.exceptions import ClientException
from litestar.params import JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED
from sqlalchemy import select, update

from backplane.accounts.mails import reset_mail
from backplane.accounts.models import RESET, AccountToken
from backplane.accounts.schemas import Accepted, LinkOut, LinkToken, ResetComplete, ResetRequest
from backplane.accounts.tokens import (
    InvalidLinkError,
    consume_user_token,
    issue_user_token,
    link,
    peek_user_token,
)
from backplane.audit.actor import Actor, current_address
from backplane.audit.record import record as audit
from backplane.identity import sessions, tenants
from backplane.identity.auth import PUBLIC_OPT
from backplane.identity.models import User
from backplane.kernel import Kernel, internals, maintenance_session
from backplane.mail.compose import compose_bytes
from backplane.mail.service import queue_message, sender_of
from backplane.plugins import KERNEL_PLUGIN
from backplane.state import rails_of
from backplane.web import NO_CACHE, NO_STORE

RESET_TASK = f"{KERNEL_PLUGIN}.mail_password_reset"
COMPLETE_PATH = "/api/auth/password-reset/complete"
PUBLIC = {PUBLIC_OPT: True}
REQUESTED = Accepted(
    detail="if an account uses this address, a link to reset its password is on its way"
)


async def mail_password_reset(kernel: Kernel, email: str) -> None:
    """Task: mail a reset link to ``email`` if an active account with a tenant uses it (sent
    as the account's oldest tenant: its sender identity and sending rate); else nothing."""
    config = kernel.settings.mail
    reason = "password reset: find the account and mail its link"
    async with maintenance_session(kernel, reason) as session:
        user = await session.scalar(select(User).where(User.email == email))
        if user is None or not user.is_active:
            return
        memberships = await sessions.memberships_of(session, user.id)
        if not memberships:
            return  # nothing to log in to
        recent = datetime.now(UTC) - timedelta(seconds=config.reset_interval_s)
        mailed = await session.scalar(
            select(AccountToken.id).where(
                AccountToken.user_id == user.id,
                AccountToken.purpose == RESET,
                AccountToken.created_at > recent,
            )
        )
        if mailed is not None:
            return  # one link a while is enough; the requests answer the same anyway
        tenant_id = memberships[0][1].id
        token = issue_user_token(session, RESET, user.id, user.email, config.reset_ttl_s)
        subject, text = reset_mail(
            link(config.link_base_url, COMPLETE_PATH, token), config.reset_ttl_s
        )
        sender, reply_to = await sender_of(session, tenant_id, config)
        message = compose_bytes(config, sender, reply_to, [user.email], subject, text)
        await queue_message(session, internals(kernel).tasks.queue_for(session), tenant_id, message)
        await session.flush()


class PasswordResetController(Controller):
    """Public: the mailed token is the credential."""

    path = "/auth/password-reset"
    tags = ["auth"]

    @post(
        "/",
        opt=PUBLIC,
        status_code=HTTP_202_ACCEPTED,
        summary="Mail a password reset link (the answer is the same for every address)",
    )
    async def request_reset(
        self, request: Request[Any, Any, Any], data: JSONBody[ResetRequest]
    ) -> Accepted:
        try:
            email = tenants.normalise_email(data.email)
        except tenants.IdentityError as exc:
            raise ClientException(str(exc)) from None
        rails = rails_of(request)
        async with rails.database.sessions() as session, session.begin():
            rails.tasks.queue_for(session).enqueue_for(None, RESET_TASK, email)
        return REQUESTED

    @get("/complete", opt=PUBLIC, summary="What a reset link is for (does not use it)")
    async def show(self, request: Request[Any, Any, Any], token: LinkToken) -> LinkOut:
        database = rails_of(request).database
        async with database.maintenance("a reset link is looked at", audit=False) as session:
            try:
                row = await peek_user_token(session, RESET, token)
            except InvalidLinkError as exc:
                raise ClientException(str(exc)) from None
        return LinkOut(email=row.email, expires_at=row.expires_at)

    @post(
        "/complete",
        opt=PUBLIC,
        status_code=200,
        cache_control=NO_STORE,
        response_headers=NO_CACHE,
        summary="Set a new password with a reset link; ends every session of the account",
    )
    async def complete(
        self, request: Request[Any, Any, Any], data: JSONBody[ResetComplete]
    ) -> Accepted:
        rails = rails_of(request)
        identity = await rails.identity.get()
        reason = "a password is reset through a mailed link"
        async with rails.database.maintenance(reason, audit=False) as session:
            try:
                row = await peek_user_token(session, RESET, data.token)
            except InvalidLinkError as exc:
                raise ClientException(str(exc)) from None
        problems = identity.hasher.check_policy(data.new_password, email=row.email)
        if problems:
            raise ClientException("password refused: " + "; ".join(problems))
        new_hash = await identity.hasher.hash(data.new_password)
        async with rails.database.maintenance(reason) as session, session.begin():
            try:  # of concurrent uses, the others wait here and find the token used
                user_id, _email = await consume_user_token(session, RESET, data.token)
            except InvalidLinkError as exc:
                raise ClientException(str(exc)) from None
            now = datetime.now(UTC)
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(password_hash=new_hash, email_verified_at=now)
            )
            await session.execute(
                update(AccountToken)
                .where(
                    AccountToken.user_id == user_id,
                    AccountToken.purpose == RESET,
                    AccountToken.used_at.is_(None),
                )
                .values(used_at=now)
            )
            await sessions.end_sessions(session, user_id)
            memberships = await sessions.memberships_of(session, user_id)
            actor = Actor(kind="user", id=str(user_id), address=current_address())
            for tenant_id in sorted({m.tenant_id for m, _ in memberships}, key=str):
                # Sorted: writers lock the tenants' chain heads in one order.
                await audit(
                    session,
                    "auth.password_changed",
                    tenant_id=tenant_id,
                    target=("user", user_id),
                    details={"via": "reset link"},
                    actor=actor,
                )
            for membership, _tenant in memberships:
                identity.authenticator.forget_membership(user_id, membership.tenant_id)
        return Accepted(detail="the password was changed and every session of the account ended")


ROUTES: list[Any] = [PasswordResetController]
