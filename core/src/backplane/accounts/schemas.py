"""Request and response bodies of the account flows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from litestar.params import QueryParameter

from backplane.identity.schemas import Email, Password, Role, TokenPair

Token = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
LinkToken = Annotated[str, QueryParameter(min_length=1, max_length=200)]
"""The ``token`` query parameter of a mailed link."""


class Accepted(msgspec.Struct):
    detail: str


class InviteIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    role: Role = "member"


class InviteOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    email: str
    role: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None


class InvitationOut(msgspec.Struct, kw_only=True):
    """What the holder of an invitation link sees before accepting it."""

    tenant_slug: str
    tenant_name: str
    email: str
    role: str
    expires_at: datetime
    account_exists: bool
    """False: accepting creates the account and needs a ``password``."""


class AcceptInvite(msgspec.Struct, forbid_unknown_fields=True):
    token: Token
    password: Password | None = None
    """The new account's password (needed only when the address has no account yet)."""


class InviteAccepted(msgspec.Struct, kw_only=True):
    tenant_id: uuid.UUID
    tenant_slug: str
    user_id: uuid.UUID
    role: str
    created_account: bool
    tokens: TokenPair | None
    """A new account is logged in; an existing one logs in with its own password."""


class ResetRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email


class ResetComplete(msgspec.Struct, forbid_unknown_fields=True):
    token: Token
    new_password: Password


class LinkOut(msgspec.Struct, kw_only=True):
    """What a reset or verification link is for, before it is used."""

    email: str
    expires_at: datetime


class VerifyIn(msgspec.Struct, forbid_unknown_fields=True):
    token: Token


class AccountOut(msgspec.Struct, kw_only=True):
    user_id: uuid.UUID
    email: str
    email_verified_at: datetime | None
