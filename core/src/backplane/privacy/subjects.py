"""One person's data in one tenant: who they are to the kernel, their export, their erasure.

A subject is named by user id or email. Tenant-local rows about them are erased (deleted or
pseudonymised) by every plugin's ``erase_subject`` hook, in one transaction; their membership
of the tenant goes with them. Their account (``backplane_users``) is deleted only when no
membership of any other tenant remains: a person who also works for another tenant keeps that
account, and the other tenant keeps every row about them.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.audit.record import record
from backplane.identity.models import Membership, Tenant, User
from backplane.kernel import Kernel, internals
from backplane.privacy.archive import ArchiveWriter
from backplane.privacy.tables import ERASE_HOOK, EXPORT_HOOK

log = logging.getLogger("backplane.audit")


class Subject(msgspec.Struct, frozen=True, kw_only=True):
    """The person an export or erasure is about, as plugins see them: ``user_id`` when they
    are a member of the tenant (a user of the kernel), and ``email`` when known. A plugin
    matches its rows on either (a contact list has emails, an author column user ids)."""

    user_id: uuid.UUID | None = None
    email: str | None = None


class ErasureResult(msgspec.Struct, frozen=True, kw_only=True):
    """What an erasure did: each plugin's report (``{table: rows}``, as its hook returned it)
    and whether the person's account was deleted (no other tenant's membership remained)."""

    subject: Subject
    plugins: dict[str, Any]
    account_deleted: bool


async def resolve_subject(
    session: AsyncSession, tenant_id: uuid.UUID, *, user_id: uuid.UUID | None, email: str | None
) -> tuple[Subject, bool]:
    """The subject named by ``user_id`` or ``email``, and whether they are a member of the
    tenant. A user id must be a member's (:class:`LookupError` otherwise); an email need not
    belong to anyone (plugins may hold it, in a contact list say), and a user's email that is
    no member's here is treated as a bare email: nothing of another tenant is touched."""
    query = select(User.id, User.email).join(Membership, Membership.user_id == User.id)
    query = query.where(Membership.tenant_id == tenant_id)
    if user_id is not None:
        row = (await session.execute(query.where(User.id == user_id))).first()
        if row is None:
            raise LookupError("no such member in this tenant")
        return Subject(user_id=row[0], email=row[1]), True
    if email is None:
        raise ValueError("name the person by user_id or email")
    normalised = email.strip().lower()
    row = (await session.execute(query.where(User.email == normalised))).first()
    if row is None:
        return Subject(email=normalised), False
    return Subject(user_id=row[0], email=row[1]), True


async def export_data(kernel: Kernel, writer: ArchiveWriter, subject: Subject | None) -> list[str]:
    """Call every plugin's ``export_tenant_data`` with its own kernel view and archive view
    (``kernel`` is bound to the tenant's session); the plugins that exported, in order."""
    from backplane.telemetry import hook_span

    called = []
    for name, function in internals(kernel).plugins.implementations(EXPORT_HOOK):
        view = kernel.for_plugin(name)
        archive = writer.view(name, kernel.db, kernel.tenant_id)
        with hook_span(EXPORT_HOOK, name):
            result = function(kernel=view, archive=archive, subject=subject)
            if inspect.isawaitable(result):
                await result
        called.append(name)
    return called


async def export_subject(
    kernel: Kernel, subject: Subject, path: Path, tenant: Tenant, *, limit: int | None
) -> dict[str, Any]:
    """Write ``subject``'s data in the kernel's tenant (``kernel.db``) to the zip ``path``,
    at most ``limit`` bytes before compression; the manifest. Half-written archives are
    deleted."""
    writer = ArchiveWriter(
        path, tenant=_tenant_record(tenant), subject=msgspec.to_builtins(subject), limit=limit
    )
    try:
        plugins = await export_data(kernel, writer, subject)
    except BaseException:
        writer.abort()
        raise
    manifest = writer.close(plugins=plugins)
    await record(
        kernel.db, "data.exported", target=_audit_target(subject), details={"scope": "subject"}
    )
    log.info("privacy: exported subject %s of tenant %s", subject.user_id or "-", tenant.id)
    return manifest


async def erase_subject(
    kernel: Kernel, tenant_id: uuid.UUID, subject: Subject, *, member: bool
) -> ErasureResult:
    """Erase ``subject`` from tenant ``tenant_id`` in every plugin, in one transaction of a
    maintenance session (the account's fate depends on other tenants' memberships, which only
    it sees); the plugins' hooks act as the tenant alone. ``member``: the subject is a member
    of the tenant (:func:`resolve_subject`), so their account may go if nothing else holds it.
    ``IdentityError`` (the last owner) rolls everything back."""
    rails = internals(kernel)
    reason = f"privacy: erase a subject of tenant {tenant_id}"
    async with rails.database.maintenance(reason) as session, session.begin():
        results = await kernel.notify(
            ERASE_HOOK, session=session, tenant_id=tenant_id, subject=subject
        )
        deleted = False
        if member and subject.user_id is not None:
            deleted = await _delete_account_if_unused(session, subject.user_id)
        await record(
            session,
            "data.erased",
            tenant_id=tenant_id,
            target=_audit_target(subject),
            details={"account_deleted": deleted, "plugins": [name for name, _ in results]},
        )
    reports: dict[str, Any] = {}
    for plugin, result in results:  # a plugin implementing the hook twice reports once, merged
        if isinstance(result, dict) and isinstance(reports.get(plugin), dict):
            reports[plugin] = {**reports[plugin], **result}
        elif result is not None:
            reports[plugin] = result
    log.info("privacy: erased subject %s of tenant %s", subject.user_id or "-", tenant_id)
    return ErasureResult(subject=subject, plugins=reports, account_deleted=deleted)


async def _delete_account_if_unused(session: AsyncSession, user_id: uuid.UUID) -> bool:
    """Delete the account if no membership of any tenant remains (the foreign keys end its
    sessions and unlink the API keys it made)."""
    left = await session.scalar(
        select(func.count()).select_from(Membership).where(Membership.user_id == user_id)
    )
    if left:
        return False
    result: Any = await session.execute(delete(User).where(User.id == user_id))
    return bool(result.rowcount)


def _tenant_record(tenant: Tenant) -> dict[str, Any]:
    return {"id": tenant.id, "slug": tenant.slug, "name": tenant.name}


def _audit_target(subject: Subject) -> tuple[str, object]:
    """The person as the trail names them: their account id, never an email (the trail
    outlives erasure, so it must not keep what erasure removed)."""
    return ("user", subject.user_id) if subject.user_id is not None else ("subject", None)
