"""Authentication: the middleware that asks every backend, the kernel's own backend, guards.

:class:`AuthenticationMiddleware` asks the backends registered through ``register_auth_backends``
(:mod:`backplane.identity.backends`) in order: the first :class:`Principal` wins, a backend that
finds a bad credential of its kind answers 401, and so does a request none claims. Handlers opt
out with ``opt={"public": True}``; nothing is public by path except the OpenAPI schema.

The kernel's ``bearer`` backend (:func:`authenticate_bearer`) takes a JWT access token or an API
key (``bp_<id>_<secret>``, also in ``X-API-Key``). Caches keep it off the database on the hot
path, each stale for at most ``REVALIDATE_S``: API keys (revoked ones stop at once in the
revoking process), memberships and plugin switches (:class:`~backplane.caching.RefreshAheadCache`:
re-read in the background, so requests under load never wait) and the logout denylist.

An API key acts with at most its creator's current role, only while the creator is a member
(operators' keys, ``created_by`` empty, keep their own role); with scopes it holds only the
permissions of its role they name. Access tokens carry the user's session epoch (claim ``sep``):
raising it (a password change) ends every older token, at once in this process and elsewhere
within ``REVALIDATE_S``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.caching import RefreshAheadCache
from backplane.db.engine import Database
from backplane.db.tenancy import bind_tenant
from backplane.identity.models import (
    ApiKey,
    Membership,
    PlatformOperator,
    RevokedAccessToken,
    Tenant,
    TenantPlugin,
    User,
    lower_role,
)
from backplane.identity.tokens import (
    InvalidToken,
    TokenService,
    parse_api_key,
    verify_api_key_digest,
)
from backplane.secret_key import secret_key
from backplane.settings import Settings
from backplane.state import rails_of

log = logging.getLogger(__name__)

REVALIDATE_S = 2.0
"""Cached API keys, memberships, the denylist and plugin switches are re-read this often."""

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]
"""What :func:`requires` returns: a Litestar guard."""

PUBLIC_OPT = "public"
PLUGIN_OPT = "backplane_plugin"
SESSION_EPOCH_CLAIM = "sep"
"""Access-token claim: the user's session epoch when the token was issued (absent: 0)."""


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling for which tenant: ``request.user`` on authenticated routes."""

    user_id: uuid.UUID | None
    tenant_id: uuid.UUID
    role: str
    permissions: frozenset[str]
    via: str
    """``token`` (an access token) or ``api_key`` (the kernel's ``bearer`` backend), else the
    plugin backend's name. Only ``token`` principals act as a user's session (log out, switch
    tenant, change the password, create tenants)."""
    token_id: str
    """The access token's ``jti``, the API key's id, or a plugin backend's ``subject``."""
    token_expires_at: int | None = None
    scopes: tuple[str, ...] = ()

    def has(self, permission: str) -> bool:
        """Whether the caller may do what ``permission`` (a code such as ``"notes.write"``,
        declared through ``register_permissions``) guards: its role holds it and, for a scoped
        API key, the key names it. For checks inside a handler, where a guard cannot decide
        alone (``if not request.user.has("notes.delete_any") and note.author != ...``)."""
        return permission in self.permissions

    @property
    def scoped(self) -> bool:
        """An API key limited to some permissions of its role (not all of them)."""
        return bool(self.scopes)


class MemberState(msgspec.Struct, frozen=True):
    """What authentication needs of a membership, read (and cached) in one query."""

    role: str
    session_epoch: int
    """The user's, not the membership's: tokens issued in an older epoch are refused."""
    operator: bool = False
    """The user is a platform operator (``backplane operators grant``)."""


class _CachedKey(msgspec.Struct, frozen=True):
    tenant_id: uuid.UUID
    digest: str
    role: str
    scopes: tuple[str, ...]
    created_by: uuid.UUID | None
    expires_at: float | None
    revoked: bool


def _is_known(found: object) -> bool:
    """Unknown key ids (tenants) are not cached: a caller can invent any number of them."""
    return found is not None


class Authenticator:
    """Verifies credentials; shared by the middleware and the identity routes."""

    def __init__(
        self,
        settings: Settings,
        tokens: TokenService,
        database: Database,
        role_permissions: dict[str, frozenset[str]],
        platform_permissions: frozenset[str] = frozenset(),
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.database = database
        self.sessionmaker = database.sessions
        self.role_permissions = role_permissions
        self.platform_permissions = platform_permissions
        """What a platform operator holds besides their role's permissions (``platform.*``)."""
        self.secret = secret_key(settings)
        self._keys = RefreshAheadCache(
            self._load_key, REVALIDATE_S, remember=_is_known, name="API keys"
        )
        self._touched: dict[str, float] = {}
        self._revoked: dict[str, float] = {}
        self._revoked_synced = 0.0
        self._switches = RefreshAheadCache(self._read_switch, REVALIDATE_S, name="plugin switches")
        self._members = RefreshAheadCache(self._read_member, REVALIDATE_S, name="memberships")
        self._tenants = RefreshAheadCache(
            self._read_tenant, REVALIDATE_S, remember=_is_known, name="tenants"
        )
        self.reload_keyring: Callable[[], Awaitable[None]] | None = None

    async def access_token_principal(self, token: str) -> Principal:
        try:
            try:
                claims = await self.tokens.averify_access_token(token, is_revoked=self.is_revoked)
            except InvalidToken as exc:
                if exc.reason != "unknown_kid" or self.reload_keyring is None:
                    raise
                # Another process may have rotated the keyring: re-read it once and retry.
                await self.reload_keyring()
                claims = await self.tokens.averify_access_token(token, is_revoked=self.is_revoked)
        except InvalidToken as exc:
            log.info("access token refused: %s", exc.reason)
            raise NotAuthorizedException("invalid or expired access token") from None
        if claims.tid is None:
            raise NotAuthorizedException("the access token has no active tenant")
        try:
            user_id, tenant_id = uuid.UUID(claims.sub), uuid.UUID(claims.tid)
        except ValueError:
            # Only our key signs tokens; still, claims we never issue are refused, not a 500.
            log.warning("access token refused: sub or tid is not a UUID (jti %s)", claims.jti)
            raise NotAuthorizedException("invalid or expired access token") from None
        # The role in the token may be stale: a removed member or a changed role takes effect
        # within REVALIDATE_S, not when the token expires.
        member = await self.membership(user_id, tenant_id)
        if member is None or member.role not in self.role_permissions:
            raise NotAuthorizedException("no longer a member of this tenant")
        epoch = claims.extra.get(SESSION_EPOCH_CLAIM, 0)
        if type(epoch) is not int or epoch < member.session_epoch:
            raise NotAuthorizedException("the session ended (the password was changed)")
        permissions = self.role_permissions[member.role]
        if member.operator:
            # Only a user's own session carries operator powers: API keys and plugin backends
            # act for a tenant, never for the deployment.
            permissions = permissions | self.platform_permissions
        return Principal(
            user_id=user_id,
            tenant_id=tenant_id,
            role=member.role,
            permissions=permissions,
            via="token",
            token_id=claims.jti,
            token_expires_at=claims.exp,
        )

    async def membership(self, user_id: uuid.UUID, tenant_id: uuid.UUID) -> MemberState | None:
        """The user's role in the tenant and session epoch (``None``: not a member)."""
        return await self._members.get((user_id, tenant_id))

    async def _read_member(self, member: tuple[uuid.UUID, uuid.UUID]) -> MemberState | None:
        user_id, tenant_id = member
        async with self.sessionmaker() as session:
            bind_tenant(session, tenant_id)
            # backplane_users and backplane_platform_operators are global (no row-level
            # security): one query, one round trip.
            rows = await session.execute(
                select(Membership.role, User.session_epoch, PlatformOperator.user_id)
                .join(User, User.id == Membership.user_id)
                .outerjoin(PlatformOperator, PlatformOperator.user_id == User.id)
                .where(Membership.user_id == user_id)
            )
            row = rows.first()
        return None if row is None else MemberState(row[0], row[1], row[2] is not None)

    def forget_membership(self, user_id: uuid.UUID, tenant_id: uuid.UUID) -> None:
        self._members.forget((user_id, tenant_id))

    async def is_revoked(self, jti: str) -> bool:
        now = time.monotonic()
        if now - self._revoked_synced > REVALIDATE_S:
            self._revoked_synced = now  # first: concurrent requests don't all re-read
            async with self.sessionmaker() as session:
                rows = await session.execute(
                    select(RevokedAccessToken.jti, RevokedAccessToken.expires_at).where(
                        RevokedAccessToken.expires_at > datetime.now(UTC)
                    )
                )
                self._revoked = {j: e.timestamp() for j, e in rows}
            self._revoked_synced = now
        return jti in self._revoked

    async def revoke_access_token(self, session: AsyncSession, jti: str, expires_at: int) -> None:
        """Deny ``jti`` from now on (here at once, elsewhere within ``REVALIDATE_S``)."""
        session.add(RevokedAccessToken(jti=jti, expires_at=datetime.fromtimestamp(expires_at, UTC)))
        self._revoked[jti] = expires_at

    async def api_key_principal(self, credential: str) -> Principal:
        try:
            key_id, secret = parse_api_key(credential)
        except InvalidToken:
            raise NotAuthorizedException("malformed API key") from None
        now = time.time()
        cached = await self._keys.get(key_id)
        if cached is None or not verify_api_key_digest(secret, self.secret, cached.digest):
            raise NotAuthorizedException("unknown API key")
        if cached.revoked:
            raise NotAuthorizedException("the API key was revoked")
        if cached.expires_at is not None and cached.expires_at <= now:
            raise NotAuthorizedException("the API key expired")
        role = cached.role
        if cached.created_by is not None:
            # Removing a member revokes their keys; this also refuses keys whose revocation
            # another process has not seen yet, and keys of members removed by other means.
            creator = await self.membership(cached.created_by, cached.tenant_id)
            if creator is None:
                raise NotAuthorizedException("the API key's creator is no longer a member")
            role = lower_role(role, creator.role)
        await self._touch(key_id, now)
        return Principal(
            user_id=cached.created_by,
            tenant_id=cached.tenant_id,
            role=role,
            permissions=self.key_permissions(role, cached.scopes),
            via="api_key",
            token_id=key_id,
            scopes=cached.scopes,
        )

    def key_permissions(self, role: str, scopes: tuple[str, ...]) -> frozenset[str]:
        """An API key's permissions: its role's, narrowed to its scopes when it has any."""
        granted = self.role_permissions.get(role, frozenset())
        return granted.intersection(scopes) if scopes else granted

    async def _load_key(self, key_id: str) -> _CachedKey | None:
        # Looking a key up by id must precede knowing its tenant; nothing else is read.
        async with self.database.maintenance("authenticate API key", audit=False) as session:
            key = await session.get(ApiKey, key_id)
        if key is None:
            return None
        return _CachedKey(
            tenant_id=key.tenant_id,
            digest=key.digest,
            role=key.role,
            scopes=tuple(key.scopes),
            created_by=key.created_by,
            revoked=key.revoked_at is not None,
            expires_at=key.expires_at.timestamp() if key.expires_at else None,
        )

    def forget_key(self, key_id: str) -> None:
        self._keys.forget(key_id)

    async def _touch(self, key_id: str, now: float) -> None:
        """Record use at most once per ``auth.api_key_touch_interval_s`` per key and process."""
        if now - self._touched.get(key_id, 0.0) < self.settings.auth.api_key_touch_interval_s:
            return
        self._touched[key_id] = now
        maintenance = self.database.maintenance("record API key use", audit=False)
        try:
            async with maintenance as session, session.begin():
                await session.execute(
                    update(ApiKey)
                    .where(ApiKey.id == key_id)
                    .values(last_used_at=datetime.fromtimestamp(now, UTC))
                )
        except OperationalError as exc:
            # Best effort: SQLite's write lock held past its busy timeout by a long task (a
            # bulk job's chunk) must not fail an authenticated request; a later use records it.
            self._touched.pop(key_id, None)
            log.warning("API key %s: its last use was not recorded (%s)", key_id, exc.orig)

    async def principal_for(self, tenant: uuid.UUID | str, role: str, *, subject: str) -> Principal:
        """A principal acting for ``tenant`` (its id or slug) with ``role``'s permissions, not
        as a user (``user_id`` None, like an operator's API key); 401 if no such tenant."""
        granted = self.role_permissions.get(role)
        if granted is None:
            raise ValueError(f"unknown role {role!r} (known: {', '.join(self.role_permissions)})")
        tenant_id = await self._tenants.get(tenant)
        if tenant_id is None:
            raise NotAuthorizedException("the credential names no existing tenant")
        return Principal(
            user_id=None,
            tenant_id=tenant_id,
            role=role,
            permissions=granted,
            via="",
            token_id=subject,
        )

    async def admit(self, principal: object, backend: str) -> Principal:
        """What a plugin's backend returned, named after ``backend`` and held to the rules of
        :meth:`principal_for` (an existing tenant, no user, exactly its role's permissions,
        narrowed to its scopes if any), so that no backend grants beyond the role map. Breaking
        them is the plugin's bug (500), not the caller's."""
        if not isinstance(principal, Principal):
            raise TypeError(f"auth backend {backend!r} returned {principal!r}, not a Principal")
        if (
            principal.role not in self.role_permissions
            or principal.permissions != self.key_permissions(principal.role, principal.scopes)
            or principal.user_id is not None
        ):
            raise TypeError(
                f"auth backend {backend!r} returned a principal with a user, an unknown role or "
                "permissions its role does not give: build it with kernel.principal_for"
            )
        if await self._tenants.get(principal.tenant_id) is None:
            raise NotAuthorizedException("the credential names no existing tenant")
        return msgspec.structs.replace(principal, via=backend)

    async def _read_tenant(self, tenant: uuid.UUID | str) -> uuid.UUID | None:
        # backplane_tenants is global (no row-level security): any session reads it.
        column = Tenant.id if isinstance(tenant, uuid.UUID) else Tenant.slug
        async with self.sessionmaker() as session:
            found: uuid.UUID | None = await session.scalar(
                select(Tenant.id).where(column == tenant)
            )
        return found

    async def plugin_enabled(self, tenant_id: uuid.UUID, plugin: str) -> bool:
        return await self._switches.get((tenant_id, plugin))

    async def _read_switch(self, switch: tuple[uuid.UUID, str]) -> bool:
        tenant_id, plugin = switch
        async with self.sessionmaker() as session:
            bind_tenant(session, tenant_id)
            row = await session.get(TenantPlugin, {"tenant_id": tenant_id, "plugin": plugin})
        return True if row is None else row.enabled

    def forget_switch(self, tenant_id: uuid.UUID, plugin: str) -> None:
        self._switches.forget((tenant_id, plugin))


async def authenticate_bearer(
    connection: ASGIConnection[Any, Any, Any, Any], kernel: Any
) -> Principal | None:
    """An access token or API key in ``Authorization: Bearer``, or an API key in ``X-API-Key``;
    None without either. Any other scheme is refused: this backend is asked after every
    plugin's, so a plugin backend for another scheme has had its turn."""
    identity = await rails_of(connection).identity.get()
    headers = connection.headers
    credential = headers.get("x-api-key")
    if credential is None:
        authorization = headers.get("authorization")
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise NotAuthorizedException("expected 'Authorization: Bearer <credential>'")
        credential = value.strip()
    if not credential:
        return None
    if credential.startswith("bp_"):
        return await identity.authenticator.api_key_principal(credential)
    return await identity.authenticator.access_token_principal(credential)


class AuthenticationMiddleware(AbstractAuthenticationMiddleware):
    """Every route needs a principal unless its handler is public (see the module docstring)."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        for authenticate, kernel in rails_of(connection).auth_backends:
            principal = await authenticate(connection, kernel)
            if principal is not None:
                return AuthenticationResult(user=principal, auth=principal)
        raise NotAuthorizedException("authentication required")


def current_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    user = connection.scope.get("user")
    return user if isinstance(user, Principal) else None


def requires(permission: str) -> Guard:
    """A Litestar guard: the caller must hold ``permission`` (see :meth:`Principal.has`), else
    403 ``missing permission '<code>'``. Use it on a handler, a controller or a router::

        from backplane import requires

        @post("/", guards=[requires("notes.write")])
        async def create_note(data: JSONBody[NoteIn]) -> NoteOut: ...

    The code should be one the plugin declares in ``register_permissions`` (with the roles that
    hold it); an undeclared code is held by nobody, so the route answers 403 to everyone.
    """

    # A coroutine function although it awaits nothing: Litestar runs a plain function guard in
    # its thread pool.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = current_principal(connection)
        if principal is None or not principal.has(permission):
            raise PermissionDeniedException(f"missing permission {permission!r}")

    guard.__name__ = f"requires_{permission.replace('.', '_')}"
    return guard


async def plugin_enabled_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """404 on a plugin's routes when the caller's tenant has the plugin switched off."""
    plugin = handler.opt.get(PLUGIN_OPT)
    principal = current_principal(connection)
    if plugin is None or principal is None:
        return
    identity = await rails_of(connection).identity.get()
    if not await identity.authenticator.plugin_enabled(principal.tenant_id, plugin):
        raise NotFoundException(f"plugin {plugin!r} is not enabled for this tenant")
