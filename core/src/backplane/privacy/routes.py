"""The data-rights API: one person's export and erasure, for the tenant's admins.

``POST /api/privacy/export`` answers with the person's archive (a zip, as the tenant export),
built synchronously: one person's data in one tenant is bounded
(``privacy.max_subject_export_bytes``, 413 beyond), written to a temporary file rather than
memory and streamed back, so a background task would add a polling protocol without making
anything safer. A whole tenant, which is not bounded, is exported by the operator's
``backplane tenants export``.

``POST /api/privacy/erase`` removes or pseudonymises the person in every plugin's rows of the
tenant and ends their membership; their account is deleted only when no other tenant's
membership remains. Nobody erases a member whose role is above their own, nor the last owner.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotFoundException,
    PermissionDeniedException,
)
from litestar.params import JSONBody
from litestar.response import File
from litestar.status_codes import HTTP_409_CONFLICT, HTTP_413_REQUEST_ENTITY_TOO_LARGE
from sqlalchemy import select

from backplane.identity.auth import Principal, requires
from backplane.identity.models import ROLE_RANK, Membership, Tenant
from backplane.identity.tenants import IdentityError, normalise_email
from backplane.kernel import Kernel
from backplane.privacy.archive import ExportTooLargeError
from backplane.privacy.subjects import Subject, erase_subject, export_subject, resolve_subject
from backplane.state import rails_of

Req = Request[Principal, Any, Any]
PERMISSION = "privacy.manage"


class SubjectIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The person: a member's ``user_id``, or an ``email`` (a member's, or one only plugins
    hold, such as a contact's). Exactly one of them."""

    user_id: uuid.UUID | None = None
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=320)] | None = None


class ErasureOut(msgspec.Struct, kw_only=True):
    subject: Subject
    was_member: bool
    account_deleted: bool
    """The account went too: no other tenant's membership held it."""
    plugins: dict[str, Any]
    """Each plugin's report of what it changed (``{table: rows}``)."""


class PrivacyController(Controller):
    path = "/privacy"
    tags = ["privacy"]
    guards = [requires(PERMISSION)]

    @post("/export", status_code=200, summary="Export one person's data in this tenant (a zip)")
    async def export(self, data: JSONBody[SubjectIn], kernel: NamedDependency[Kernel]) -> File:
        subject, _ = await _subject(kernel, data)
        tenant = await kernel.db.get(Tenant, kernel.tenant_id)
        if tenant is None:
            raise NotFoundException("tenant not found")
        limit = kernel.settings.privacy.max_subject_export_bytes
        handle, name = tempfile.mkstemp(prefix="backplane-export-", suffix=".zip")
        os.close(handle)
        path = Path(name)
        try:
            await export_subject(kernel, subject, path, tenant, limit=limit)
        except ExportTooLargeError as exc:
            path.unlink(missing_ok=True)
            raise HTTPException(
                status_code=HTTP_413_REQUEST_ENTITY_TOO_LARGE, detail=str(exc)
            ) from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return File(
            path=path,
            filename=f"{tenant.slug}-subject-export.zip",
            media_type="application/zip",
            headers={"Cache-Control": "no-store"},
            background=BackgroundTask(_remove, path),
        )

    @post("/erase", status_code=200, summary="Erase one person from this tenant, in every plugin")
    async def erase(
        self, request: Req, data: JSONBody[SubjectIn], kernel: NamedDependency[Kernel]
    ) -> ErasureOut:
        subject, member = await _subject(kernel, data)
        if member and subject.user_id is not None:
            role = await kernel.db.scalar(
                select(Membership.role).where(Membership.user_id == subject.user_id)
            )
            if ROLE_RANK.get(role or "", 99) > ROLE_RANK.get(request.user.role, -1):
                raise PermissionDeniedException(f"a {request.user.role} cannot erase a {role}")
        await kernel.db.rollback()  # the erasure is a transaction of its own
        assert kernel.tenant_id is not None
        try:
            result = await erase_subject(kernel, kernel.tenant_id, subject, member=member)
        except IdentityError as exc:
            raise HTTPException(status_code=HTTP_409_CONFLICT, detail=str(exc)) from None
        if subject.user_id is not None:
            identity = rails_of(request).identity.identity
            if identity is not None:
                identity.authenticator.forget_membership(subject.user_id, kernel.tenant_id)
        return ErasureOut(
            subject=subject,
            was_member=member,
            account_deleted=result.account_deleted,
            plugins=result.plugins,
        )


async def _subject(kernel: Kernel, data: SubjectIn) -> tuple[Subject, bool]:
    if (data.user_id is None) == (data.email is None):
        raise ClientException("name the person by exactly one of user_id or email")
    assert kernel.tenant_id is not None
    try:
        email = None if data.email is None else normalise_email(data.email)
    except IdentityError as exc:
        raise ClientException(str(exc)) from None
    try:
        return await resolve_subject(kernel.db, kernel.tenant_id, user_id=data.user_id, email=email)
    except LookupError as exc:
        raise NotFoundException(str(exc)) from None


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


ROUTES = [PrivacyController]
