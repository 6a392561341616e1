"""E-mail verification: a user asks for a link to their address; using it marks the address
verified (only if it is still the account's address)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, PermissionDeniedException
from litestar.params import JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.accounts.mails import verify_mail
from backplane.accounts.models import VERIFY
from backplane.accounts.schemas import Accepted, AccountOut, LinkOut, LinkToken, VerifyIn
from backplane.accounts.tokens import (
    InvalidLinkError,
    consume_user_token,
    issue_user_token,
    link,
    peek_user_token,
)
from backplane.identity.auth import PUBLIC_OPT, Principal
from backplane.identity.models import User
from backplane.kernel import Kernel
from backplane.state import rails_of

Req = Request[Principal, Any, Any]
VERIFY_PATH = "/api/auth/verify-email"
PUBLIC = {PUBLIC_OPT: True}


async def _user(request: Req, db: AsyncSession) -> User:
    principal = request.user
    if principal.user_id is None:
        raise PermissionDeniedException("only a user has an e-mail address to verify")
    user = await db.get(User, principal.user_id)
    if user is None:
        raise PermissionDeniedException("unknown user")
    return user


class VerificationController(Controller):
    path = "/auth"
    tags = ["auth"]

    @get("/account", summary="The calling user's address and whether it is verified")
    async def account(self, request: Req, db: NamedDependency[AsyncSession]) -> AccountOut:
        user = await _user(request, db)
        return AccountOut(
            user_id=user.id, email=user.email, email_verified_at=user.email_verified_at
        )

    @post(
        "/verify-email/request",
        status_code=HTTP_202_ACCEPTED,
        summary="Mail a verification link to the calling user's address",
    )
    async def request_link(
        self, request: Req, db: NamedDependency[AsyncSession], kernel: NamedDependency[Kernel]
    ) -> Accepted:
        user = await _user(request, db)
        config = kernel.settings.mail
        token = issue_user_token(db, VERIFY, user.id, user.email, config.verify_ttl_s)
        subject, text = verify_mail(
            link(config.link_base_url, VERIFY_PATH, token), config.verify_ttl_s
        )
        await kernel.mail.send(user.email, subject, text)
        return Accepted(detail=f"a verification link is on its way to {user.email}")

    @get("/verify-email", opt=PUBLIC, summary="What a verification link is for (does not use it)")
    async def show(self, request: Request[Any, Any, Any], token: LinkToken) -> LinkOut:
        database = rails_of(request).database
        async with database.maintenance("a verification link is looked at", audit=False) as s:
            try:
                row = await peek_user_token(s, VERIFY, token)
            except InvalidLinkError as exc:
                raise ClientException(str(exc)) from None
        return LinkOut(email=row.email, expires_at=row.expires_at)

    @post("/verify-email", opt=PUBLIC, status_code=200, summary="Use a verification link")
    async def verify(self, request: Request[Any, Any, Any], data: JSONBody[VerifyIn]) -> Accepted:
        database = rails_of(request).database
        reason = "an e-mail address is verified through a mailed link"
        async with database.maintenance(reason, audit=False) as session, session.begin():
            try:
                user_id, email = await consume_user_token(session, VERIFY, data.token)
            except InvalidLinkError as exc:
                raise ClientException(str(exc)) from None
            await session.execute(
                update(User)
                .where(User.id == user_id, User.email == email)
                .values(email_verified_at=datetime.now(UTC))
            )
        return Accepted(detail=f"{email} is verified")


ROUTES: list[Any] = [VerificationController]
