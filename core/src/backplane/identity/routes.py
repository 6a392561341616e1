"""The identity API: login sessions, the caller, tenant members and plugins, API keys.

Responses that carry a credential (token pairs, a new API key) are marked ``Cache-Control:
no-store`` and ``Pragma: no-cache``: no browser, proxy or CDN may keep them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    TooManyRequestsException,
)
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT, HTTP_409_CONFLICT
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.audit.actor import Actor, current_address
from backplane.audit.record import record as audit
from backplane.db.locks import lock_row
from backplane.identity import sessions, tenants
from backplane.identity.apikeys import check_scopes, create_api_key
from backplane.identity.auth import PUBLIC_OPT, Principal, requires
from backplane.identity.models import ROLE_RANK, ApiKey, Membership, Tenant, User
from backplane.identity.permissions import permission_codes
from backplane.identity.runtime import Identity
from backplane.identity.schemas import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    CreateTenantRequest,
    LoginRequest,
    LogoutRequest,
    MemberIn,
    MemberOut,
    MembershipOut,
    MeOut,
    PasswordChange,
    PluginStateOut,
    PluginSwitch,
    RefreshRequest,
    RoleIn,
    SwitchTenantRequest,
    TenantOut,
    TokenPair,
)
from backplane.identity.throttle import ThrottleDecision, ThrottleUnavailableError
from backplane.kernel import Kernel
from backplane.state import rails_of
from backplane.web import NO_CACHE, NO_STORE

log = logging.getLogger(__name__)

Req = Request[Principal, Any, Any]
PUBLIC = {PUBLIC_OPT: True}
SECRET: dict[str, Any] = {"cache_control": NO_STORE, "response_headers": NO_CACHE}


def _identity(request: Request[Any, Any, Any]) -> Identity:
    """Started by the time a route runs: authentication (or login) needed it first."""
    identity: Identity | None = rails_of(request).identity.identity
    if identity is None:
        raise HTTPException(status_code=503, detail="identity services unavailable")
    return identity


def _sign_in(identity: Identity) -> AsyncSession:
    """A maintenance session for the caller's own account: a user's memberships span tenants.
    The request's own session stays unused, so a request holds one pooled connection."""
    return identity.database.maintenance("a user's own account and memberships", audit=False)


@contextmanager
def _refusing() -> Iterator[None]:
    """An :class:`IdentityError` answers 400, or 409 for a reached limit (the request was fine;
    the state refuses it)."""
    try:
        yield
    except tenants.LimitReachedError as exc:
        raise HTTPException(status_code=HTTP_409_CONFLICT, detail=str(exc)) from None
    except tenants.IdentityError as exc:
        raise ClientException(str(exc)) from None


@dataclass(frozen=True)
class _Attempt:
    """A password attempt, counted before the password is checked so that attempts in flight
    count too: at most the limit of guesses is made in a window, however many arrive at once."""

    identity: Identity
    account: str
    address: tuple[str, ThrottleDecision] | None

    async def succeeded(self) -> None:
        """Only failed attempts use up the limits: the account's count starts again (its owner
        proved the password) and the client address, which others share, gets the attempt back.
        If the throttle's store does not answer, it stays counted (the stricter outcome)."""
        try:
            await self.identity.account_throttle.reset(self.account)
            if self.address is not None:
                await self.identity.address_throttle.forget(*self.address)
        except ThrottleUnavailableError:
            log.warning("login throttle unavailable: a successful attempt stays counted")


async def _count_attempt(identity: Identity, account: str, address: str | None = None) -> _Attempt:
    """Count a password attempt against the account (and the client address): 429 once a
    limit is reached, 503 when the throttle's shared store does not answer. A refused attempt
    checks no password, so what it counted against the account is given back."""
    at_address: tuple[str, ThrottleDecision] | None = None
    try:
        decision = await identity.account_throttle.hit(account)
        if decision.allowed and address is not None:
            at_address = (address, await identity.address_throttle.hit(address))
            if not at_address[1].allowed:
                await identity.account_throttle.forget(account, decision)
                decision = at_address[1]
    except ThrottleUnavailableError:
        raise HTTPException(status_code=503, detail="login throttle unavailable") from None
    if not decision.allowed:
        raise TooManyRequestsException(
            detail="too many password attempts; try again later",
            headers={"Retry-After": str(max(1, decision.retry_after_s))},
        )
    return _Attempt(identity, account, at_address)


async def _audit_failed_login(
    identity: Identity, user: User | None, asked: str | None, client: str
) -> None:
    """A failed password login, in the audit trail of one tenant of the account: the tenant
    the login asked for if the user belongs to it, else the one a login would have chosen.

    Only a tenant the user belongs to ever sees it, and only one: the row names neither the
    tenant asked for nor the user's other tenants, so tenants learn nothing of each other.
    An email no account has belongs to no tenant (and a row per guess would let anyone fill a
    table): it goes to the ``backplane.audit`` log only, without the email (a password is
    sometimes typed into the email field)."""
    if user is None:
        logging.getLogger("backplane.audit").info(
            "login failed for an unknown email from %r", client
        )
        return
    async with _sign_in(identity) as session, session.begin():
        memberships = await sessions.memberships_of(session, user.id)
        if not memberships:
            return
        chosen = next(
            (m for m, t in memberships if asked in (t.slug, str(t.id))), memberships[0][0]
        )
        why = "wrong password" if user.is_active else "account disabled"
        await audit(
            session,
            "auth.login_failed",
            tenant_id=chosen.tenant_id,
            target=("user", user.id),
            actor=Actor(kind="user", id=str(user.id), address=current_address()),
            details={"reason": why},
        )


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @post("/login", opt=PUBLIC, status_code=200, **SECRET, summary="Log in with email and password")
    async def login(
        self, request: Request[Any, Any, Any], data: JSONBody[LoginRequest]
    ) -> TokenPair:
        identity = _identity(request)
        with _refusing():
            email = tenants.normalise_email(data.email)
        client = request.client.host if request.client else "unknown"
        attempt = await _count_attempt(identity, f"account:{email}", address=f"address:{client}")
        # The account is read, and its connection given back, before the password is hashed:
        # a pooled connection is never held for the duration of a hash.
        async with _sign_in(identity) as session:
            user = await session.scalar(select(User).where(User.email == email))
        ok = await identity.hasher.verify(user.password_hash if user else None, data.password)
        if not ok or user is None or not user.is_active:
            await _audit_failed_login(identity, user, data.tenant, client)
            raise NotAuthorizedException("invalid email or password")
        await attempt.succeeded()
        rehashed = None
        if user.password_hash and identity.hasher.needs_rehash(user.password_hash):
            rehashed = await identity.hasher.hash(data.password)
        async with _sign_in(identity) as session, session.begin():
            if rehashed is not None:
                await session.execute(
                    update(User).where(User.id == user.id).values(password_hash=rehashed)
                )
            membership, _tenant = await sessions.choose_membership(session, user.id, data.tenant)
            await audit(
                session,
                "auth.login",
                tenant_id=membership.tenant_id,
                target=("user", user.id),
                actor=Actor(kind="user", id=str(user.id), address=current_address()),
                details={"method": "password"},
            )
            return await sessions.issue_pair(identity, session, user.id, membership)

    @post(
        "/refresh",
        opt=PUBLIC,
        status_code=200,
        **SECRET,
        summary="Exchange a refresh token (reuse of a used one revokes its whole session)",
    )
    async def refresh(
        self, request: Request[Any, Any, Any], data: JSONBody[RefreshRequest]
    ) -> TokenPair:
        identity = _identity(request)
        async with _sign_in(identity) as session, session.begin():
            return await sessions.rotate_refresh_token(identity, session, data.refresh_token)

    @post("/logout", status_code=HTTP_204_NO_CONTENT, summary="End the session")
    async def logout(
        self, request: Req, data: JSONBody[LogoutRequest], db: NamedDependency[AsyncSession]
    ) -> None:
        principal = request.user
        identity = _identity(request)
        if principal.via == "token" and principal.token_expires_at is not None:
            await identity.authenticator.revoke_access_token(
                db, principal.token_id, principal.token_expires_at
            )
        if data.refresh_token:
            family = await sessions.family_of(db, data.refresh_token)
            if family is not None:
                await sessions.revoke_family(db, family)

    @post("/switch-tenant", status_code=200, **SECRET, summary="Act in another tenant of yours")
    async def switch_tenant(self, request: Req, data: JSONBody[SwitchTenantRequest]) -> TokenPair:
        principal = request.user
        if principal.user_id is None or principal.via != "token":
            raise PermissionDeniedException("only a user's access token can switch tenants")
        identity = _identity(request)
        async with _sign_in(identity) as session, session.begin():
            membership, _ = await sessions.choose_membership(
                session, principal.user_id, data.tenant
            )
            if principal.token_expires_at is not None:
                await identity.authenticator.revoke_access_token(
                    session, principal.token_id, principal.token_expires_at
                )
            # A login into the tenant switched to, where its admins see it (not where it began).
            await audit(
                session,
                "auth.login",
                tenant_id=membership.tenant_id,
                target=("user", principal.user_id),
                details={"method": "switch_tenant"},
            )
            return await sessions.issue_pair(identity, session, principal.user_id, membership)


class MeController(Controller):
    path = "/me"
    tags = ["auth"]

    @get("/", summary="Who is calling, for which tenant, with which permissions")
    async def me(self, request: Req) -> MeOut:
        principal = request.user
        email = None
        memberships: list[MembershipOut] = []
        if principal.user_id is not None:  # a user's token or key (a key: its creator's)
            async with _sign_in(_identity(request)) as session:
                email = await session.scalar(select(User.email).where(User.id == principal.user_id))
                memberships = [
                    MembershipOut(tenant_id=t.id, tenant_slug=t.slug, role=m.role)
                    for m, t in await sessions.memberships_of(session, principal.user_id)
                ]
        return MeOut(
            user_id=principal.user_id,
            email=email,
            tenant_id=principal.tenant_id,
            role=principal.role,
            permissions=sorted(principal.permissions),
            authenticated_by=principal.via,
            memberships=memberships,
        )

    @put(
        "/password",
        status_code=200,
        **SECRET,
        summary="Change your password: ends every session of yours and answers a new token pair",
        description="Every access and refresh token of the user issued before stops working "
        "(other server processes refuse old access tokens within two seconds); the answer is a "
        "fresh pair for the caller's tenant, so the client that changed the password stays "
        "logged in. Answered 204 without a body before the pair was added.",
    )
    async def change_password(self, request: Req, data: JSONBody[PasswordChange]) -> TokenPair:
        principal = request.user
        if principal.user_id is None or principal.via != "token":
            raise PermissionDeniedException("passwords are changed with a user's access token")
        identity = _identity(request)
        # As at login: read, give the connection back, then hash; guesses of the current
        # password count against the account's login throttle, a right one does not.
        async with _sign_in(identity) as session:
            user = await session.get(User, principal.user_id)
        if user is None:
            raise NotAuthorizedException("unknown user")
        attempt = await _count_attempt(identity, f"account:{user.email}")
        if user.password_hash is not None and not await identity.hasher.verify(
            user.password_hash, data.current_password or ""
        ):
            raise PermissionDeniedException("the current password is wrong")
        await attempt.succeeded()
        problems = identity.hasher.check_policy(data.new_password, email=user.email)
        if problems:
            raise ClientException("password refused: " + "; ".join(problems))
        new_hash = await identity.hasher.hash(data.new_password)
        async with _sign_in(identity) as session, session.begin():
            await session.execute(
                update(User).where(User.id == user.id).values(password_hash=new_hash)
            )
            await sessions.end_sessions(session, user.id)
            memberships = await sessions.memberships_of(session, user.id)
            for tenant_id in sorted({m.tenant_id for m, _ in memberships}, key=str):
                # Every tenant of the account: its sessions there ended too (sorted: writers
                # lock chain heads in one order).
                target = ("user", user.id)
                await audit(session, "auth.password_changed", tenant_id=tenant_id, target=target)
            for membership, _tenant in memberships:
                identity.authenticator.forget_membership(user.id, membership.tenant_id)
            current = next((m for m, _ in memberships if m.tenant_id == principal.tenant_id), None)
            if current is None:
                raise NotAuthorizedException("no longer a member of this tenant")
            return await sessions.issue_pair(identity, session, user.id, current)


class TenantsController(Controller):
    path = "/tenants"
    tags = ["tenants"]

    @post("/", status_code=HTTP_201_CREATED, summary="Create a tenant you own")
    async def create(self, request: Req, data: JSONBody[CreateTenantRequest]) -> TenantOut:
        principal = request.user
        if principal.user_id is None or principal.via != "token":
            raise PermissionDeniedException("tenants are created by users, not API keys")
        identity = _identity(request)
        with _refusing():  # before the slug reaches the audit log's reason
            slug = tenants.check_slug(data.slug)
        reason = f"user {principal.user_id} creates tenant {slug!r}"
        async with identity.database.maintenance(reason) as session:
            # One creation per user at a time, so that the cap holds under concurrency.
            await lock_row(session, User, principal.user_id)
            user = await session.get(User, principal.user_id)
            if user is None:
                raise NotAuthorizedException("unknown user")
            with _refusing():
                await tenants.check_owned_tenants(
                    session, user.id, identity.settings.auth.max_tenants_per_user
                )
                # A taken slug gets a random suffix: the answer must not tell which exist.
                tenant, _ = await tenants.create_tenant(
                    session,
                    rails_of(request).kernel(),
                    slug=slug,
                    owner_email=user.email,
                    name=data.name,
                    if_taken="suffix",
                )
            await session.commit()
        return TenantOut(id=tenant.id, slug=tenant.slug, name=tenant.name)


_MEMBERS = select(Membership, User).join(User, User.id == Membership.user_id)


class TenantController(Controller):
    """The caller's own tenant: members and plugins. Every query is tenant-scoped."""

    path = "/tenant"
    tags = ["tenant"]

    @get("/members", guards=[requires("tenant.read")])
    async def list_members(self, db: NamedDependency[AsyncSession]) -> list[MemberOut]:
        rows = await db.execute(_MEMBERS.order_by(User.email))
        return [MemberOut(user_id=u.id, email=u.email, role=m.role) for m, u in rows.tuples()]

    @post("/members", guards=[requires("tenant.members.manage")], status_code=HTTP_201_CREATED)
    async def add_member(
        self, request: Req, data: JSONBody[MemberIn], db: NamedDependency[AsyncSession]
    ) -> MemberOut:
        _may_manage_member(request, data.role)
        with _refusing():
            user = await tenants.get_or_create_user(db, data.email)
            await tenants.set_member_role(db, request.user.tenant_id, user.id, data.role)
        return MemberOut(user_id=user.id, email=user.email, role=data.role)

    @patch("/members/{user_id:uuid}", guards=[requires("tenant.members.manage")])
    async def change_role(
        self,
        request: Req,
        user_id: FromPath[uuid.UUID],
        data: JSONBody[RoleIn],
        db: NamedDependency[AsyncSession],
    ) -> MemberOut:
        membership, user = await _member(db, user_id)
        _may_manage_member(request, data.role)
        _may_manage_member(request, membership.role)
        with _refusing():
            await tenants.set_member_role(db, request.user.tenant_id, user_id, data.role)
        _identity(request).authenticator.forget_membership(user_id, request.user.tenant_id)
        return MemberOut(user_id=user.id, email=user.email, role=data.role)

    @delete("/members/{user_id:uuid}", guards=[requires("tenant.members.manage")])
    async def remove_member(
        self, request: Req, user_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> None:
        membership, _ = await _member(db, user_id)
        _may_manage_member(request, membership.role)
        with _refusing():
            revoked = await tenants.set_member_role(db, request.user.tenant_id, user_id, None)
        authenticator = _identity(request).authenticator
        authenticator.forget_membership(user_id, request.user.tenant_id)
        for key_id in revoked:
            authenticator.forget_key(key_id)

    @get("/plugins", guards=[requires("tenant.read")])
    async def list_plugins(
        self, request: Req, db: NamedDependency[AsyncSession], kernel: NamedDependency[Kernel]
    ) -> list[PluginStateOut]:
        states = await tenants.enabled_plugins(db, kernel, request.user.tenant_id)
        return [PluginStateOut(plugin=p, enabled=e) for p, e in states.items()]

    @put("/plugins/{plugin:str}", guards=[requires("tenant.plugins.manage")])
    async def switch_plugin(
        self,
        request: Req,
        plugin: FromPath[str],
        data: JSONBody[PluginSwitch],
        db: NamedDependency[AsyncSession],
        kernel: NamedDependency[Kernel],
    ) -> PluginStateOut:
        tenant = await db.get(Tenant, request.user.tenant_id)
        if tenant is None:
            raise NotFoundException("tenant not found")
        try:
            await tenants.set_plugin_enabled(db, kernel, tenant, plugin, data.enabled)
        except tenants.IdentityError as exc:
            raise NotFoundException(str(exc)) from None
        _identity(request).authenticator.forget_switch(tenant.id, plugin)
        return PluginStateOut(plugin=plugin, enabled=data.enabled)


class ApiKeysController(Controller):
    path = "/apikeys"
    tags = ["apikeys"]
    guards = [requires("apikeys.manage")]

    @get("/")
    async def list_keys(self, db: NamedDependency[AsyncSession]) -> list[ApiKeyOut]:
        keys = await db.scalars(select(ApiKey).order_by(ApiKey.created_at))
        return [msgspec.convert(k, ApiKeyOut, from_attributes=True) for k in keys]

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        **SECRET,
        summary="Create an API key (shown once); its scopes narrow its role's permissions",
    )
    async def create_key(
        self, request: Req, data: JSONBody[ApiKeyIn], db: NamedDependency[AsyncSession]
    ) -> ApiKeyCreated:
        principal = request.user
        identity = _identity(request)
        _may_grant(principal, data.role)
        with _refusing():
            scopes = check_scopes(
                data.scopes, permission_codes(identity.authenticator.role_permissions)
            )
        beyond = sorted(set(scopes) - principal.permissions)
        if beyond:
            raise PermissionDeniedException(
                f"a key cannot be given scopes its creator lacks: {', '.join(beyond)}"
            )
        if not scopes and principal.scoped:
            # Unscoped, the new key would hold every permission of its role.
            scopes = sorted(principal.permissions)
        expires = None
        if data.expires_in_days:
            expires = datetime.now(UTC) + timedelta(days=data.expires_in_days)
        with _refusing():
            return await create_api_key(
                db,
                identity.secret,
                tenant_id=principal.tenant_id,
                name=data.name,
                role=data.role,
                scopes=scopes,
                created_by=principal.user_id,
                expires_at=expires,
                max_keys=identity.settings.auth.max_api_keys_per_tenant,
            )

    @delete("/{key_id:str}")
    async def revoke_key(
        self, request: Req, key_id: FromPath[str], db: NamedDependency[AsyncSession]
    ) -> None:
        key = await db.get(ApiKey, key_id)
        if key is None:
            raise NotFoundException("no such API key")
        if key.revoked_at is None:
            key.revoked_at = datetime.now(UTC)
            await audit(db, "apikey.revoked", target=("api_key", key_id))
        _identity(request).authenticator.forget_key(key_id)


def _may_grant(principal: Principal, role: str) -> None:
    """Nobody grants, changes or removes a role above their own (for a key: its effective
    role, at most its creator's)."""
    if ROLE_RANK.get(role, 99) > ROLE_RANK.get(principal.role, -1):
        raise PermissionDeniedException(f"a {principal.role} cannot manage the {role} role")


def _may_manage_member(request: Req, role: str) -> None:
    """:func:`_may_grant`, and a scoped key manages only roles whose permissions it holds:
    otherwise adding a member (say, its holder's own account) would hand out more than it has.
    """
    principal = request.user
    _may_grant(principal, role)
    if principal.scoped:
        held = _identity(request).authenticator.role_permissions.get(role, frozenset())
        missing = sorted(held - principal.permissions)
        if missing:
            raise PermissionDeniedException(
                f"this key's scopes lack {', '.join(missing)}, which the {role} role holds"
            )


async def _member(db: AsyncSession, user_id: uuid.UUID) -> tuple[Membership, User]:
    row = (await db.execute(_MEMBERS.where(Membership.user_id == user_id))).tuples().first()
    if row is None:
        raise NotFoundException("no such member in this tenant")
    return row


@get(
    "/.well-known/jwks.json",
    opt=PUBLIC,
    tags=["auth"],
    summary="Public keys that verify access tokens",
)
async def jwks(request: Request[Any, Any, Any]) -> dict[str, Any]:
    identity = await rails_of(request).identity.get()
    await identity.refresh_keyring()
    return identity.tokens.jwks()


ROUTES = [AuthController, MeController, TenantsController, TenantController, ApiKeysController]
