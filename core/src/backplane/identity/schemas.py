"""Request and response bodies of the identity API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Role = Annotated[str, msgspec.Meta(pattern="^(owner|admin|member|viewer)$")]


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password
    tenant: str | None = None
    """Tenant slug or id to act in; the user's first tenant when omitted."""


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class LogoutRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class SwitchTenantRequest(msgspec.Struct, forbid_unknown_fields=True):
    tenant: Annotated[str, msgspec.Meta(min_length=1, max_length=63)]


class TokenPair(msgspec.Struct):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int
    tenant_id: uuid.UUID
    role: str


class MembershipOut(msgspec.Struct):
    tenant_id: uuid.UUID
    tenant_slug: str
    role: str


class MeOut(msgspec.Struct):
    user_id: uuid.UUID | None
    email: str | None
    tenant_id: uuid.UUID
    role: str
    permissions: list[str]
    authenticated_by: str
    memberships: list[MembershipOut]


class CreateTenantRequest(msgspec.Struct, forbid_unknown_fields=True):
    slug: Annotated[str, msgspec.Meta(min_length=2, max_length=63)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


class TenantOut(msgspec.Struct):
    id: uuid.UUID
    slug: str
    name: str


class MemberIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    role: Role = "member"


class RoleIn(msgspec.Struct, forbid_unknown_fields=True):
    role: Role


class MemberOut(msgspec.Struct):
    user_id: uuid.UUID
    email: str
    role: str


class PluginSwitch(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool


class PluginStateOut(msgspec.Struct):
    plugin: str
    enabled: bool


class ApiKeyIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    role: Role = "member"
    scopes: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=100)]], msgspec.Meta(max_length=50)
    ] = msgspec.field(default_factory=list)
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


class ApiKeyOut(msgspec.Struct):
    id: str
    name: str
    role: str
    scopes: list[str]
    created_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(msgspec.Struct):
    id: str
    key: str
    """Shown once: only an HMAC of its secret is stored."""
    name: str
    role: str
    scopes: list[str]
    """Empty: every permission of the role; else only these (of the role's)."""
    expires_at: datetime | None


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    current_password: Password | None = None
    """Required when the account already has a password."""
    new_password: Password
