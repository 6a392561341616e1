"""``/api/education/xapi/credentials``: tenant admins create, list and revoke LRS credentials.

These routes take the kernel's usual authentication (a member's token or an API key) and the
``education.xapi.manage`` permission; the LRS itself takes only the credentials made here.
The secret is shown once, at creation; the table keeps its digest.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from sqlalchemy import select

from backplane import Kernel, requires
from backplane_education.xapi import auth
from backplane_education.xapi.models import XapiCredential

MANAGE = "education.xapi.manage"


class CredentialIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    scope: Literal["read", "write", "all"] = "all"


class CredentialOut(msgspec.Struct):
    key: str
    name: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None
    secret: str | None = None
    """Only in the answer to the creation: the HTTP Basic password."""


def _out(row: XapiCredential, secret: str | None = None) -> CredentialOut:
    return CredentialOut(row.id, row.name, row.scope, row.created_at, row.revoked_at, secret)


class XapiCredentialsController(Controller):
    path = "/xapi/credentials"
    tags = ["education"]
    guards = [requires(MANAGE)]

    @post("/")
    async def create_credential(
        self, data: CredentialIn, kernel: NamedDependency[Kernel]
    ) -> CredentialOut:
        """A new key and secret (HTTP Basic user name and password for ``/xapi/``)."""
        principal = kernel.principal
        assert principal is not None
        issued = auth.new_credential(principal.tenant_id)
        row = XapiCredential(
            id=issued.key,
            name=data.name,
            scope=data.scope,
            secret_digest=auth.digest(issued.secret),
            created_by=principal.user_id,
            created_at=datetime.now(UTC),
        )
        kernel.db.add(row)
        await kernel.audit.record(
            "education.xapi_credential_created",
            target=("xapi_credential", issued.key),
            details={"name": data.name, "scope": data.scope},
        )
        return _out(row, issued.secret)

    @get("/")
    async def list_credentials(self, kernel: NamedDependency[Kernel]) -> list[CredentialOut]:
        rows = await kernel.db.scalars(select(XapiCredential).order_by(XapiCredential.created_at))
        return [_out(row) for row in rows]

    @delete("/{key:str}")
    async def revoke_credential(self, key: FromPath[str], kernel: NamedDependency[Kernel]) -> None:
        """Revoke the key: refused here at once, in other processes within
        ``xapi.credential_cache_s``."""
        row = await kernel.db.get(XapiCredential, key)
        if row is None:
            raise NotFoundException(f"no LRS credential {key!r}")
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
            await kernel.audit.record(
                "education.xapi_credential_revoked", target=("xapi_credential", key)
            )
        auth.forget(key)
