"""The kernel's own tables under the data-rights hooks (registered by ``defaults/privacy.py``).

Identity (accounts of members, memberships, plugin switches, API keys, login sessions), billing
(usage, limits, subscriptions, invoices), billing webhooks, tenant models with their files, and
the tenant's queued tasks. Secrets never leave: password hashes, API key digests, refresh token
hashes and sealed webhook secrets are left out of every export.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sqlalchemy import delete, select, update

from backplane.audit.models import AuditEvent, AuditHead
from backplane.billing.models import (
    Entitlement,
    QuotaNotice,
    UsageCounter,
    UsageDistinct,
    UsageEvent,
    UsageRollup,
)
from backplane.billing.plan_models import Invoice, InvoiceLine, Subscription
from backplane.billing.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from backplane.identity.models import ApiKey, Membership, RefreshToken, TenantPlugin, User
from backplane.identity.tenants import set_member_role
from backplane.inference.alias_models import ModelAlias, ModelAliasChange
from backplane.inference.models import ModelVersion
from backplane.inference.schedule_models import TrainingSchedule
from backplane.inference.training_runs import TrainingRun
from backplane.kernel import Kernel, internals
from backplane.privacy.archive import ExportArchive
from backplane.privacy.kernel_files import (
    delete_tenant_objects,
    erase_file_uploader,
    export_files,
)
from backplane.privacy.kernel_mail import erase_mail, export_mail
from backplane.privacy.subjects import Subject
from backplane.tasks.models import OutboxMessage

log = logging.getLogger(__name__)

SECRETS: dict[Any, tuple[str, ...]] = {
    User: ("password_hash",),
    ApiKey: ("digest",),
    RefreshToken: ("token_hash",),
    WebhookEndpoint: ("secret_sealed",),
}
TENANT_TABLES = (
    Membership,
    TenantPlugin,
    ApiKey,
    UsageEvent,
    UsageCounter,
    Entitlement,
    UsageRollup,
    UsageDistinct,
    QuotaNotice,
    Subscription,
    Invoice,
    InvoiceLine,
    WebhookEndpoint,
    WebhookEvent,
    WebhookDelivery,
    ModelVersion,
    ModelAlias,
    ModelAliasChange,
    TrainingRun,
    TrainingSchedule,
    AuditEvent,
    AuditHead,
)
"""The kernel's ``TenantScoped`` tables, exported whole for a tenant export."""


async def export_kernel_data(
    kernel: Kernel, archive: ExportArchive, subject: Subject | None
) -> None:
    tenant_id = kernel.tenant_id
    if subject is None:
        for model in TENANT_TABLES:
            await archive.add_table(model, redact=SECRETS.get(model, ()))
        members = select(Membership.user_id).where(Membership.tenant_id == tenant_id)
        await archive.add_table(User, User.id.in_(members), redact=SECRETS[User])
        await archive.add_table(
            RefreshToken, RefreshToken.active_tenant_id == tenant_id, redact=SECRETS[RefreshToken]
        )
        await archive.add_table(OutboxMessage, OutboxMessage.context_tenant_id == tenant_id)
        await _export_model_files(kernel, archive)
        await export_files(kernel, archive, None)
        await export_mail(kernel, archive, None)
        return
    await export_mail(kernel, archive, subject)
    if subject.user_id is None:
        return  # the kernel holds nothing else about a person who is no member
    user_id = subject.user_id
    await archive.add_table(User, User.id == user_id, redact=SECRETS[User])
    await archive.add_table(Membership, Membership.user_id == user_id)
    await archive.add_table(ApiKey, ApiKey.created_by == user_id, redact=SECRETS[ApiKey])
    await archive.add_table(
        RefreshToken,
        RefreshToken.user_id == user_id,
        RefreshToken.active_tenant_id == tenant_id,
        redact=SECRETS[RefreshToken],
    )
    await archive.add_table(ModelVersion, ModelVersion.created_by == user_id)
    await archive.add_table(TrainingRun, TrainingRun.requested_by == user_id)
    await archive.add_table(TrainingSchedule, TrainingSchedule.updated_by == user_id)
    await export_files(kernel, archive, subject)
    # What the person did, as the trail recorded it (erasure keeps these rows: security logs).
    await archive.add_table(
        AuditEvent, AuditEvent.actor_kind == "user", AuditEvent.actor_id == str(user_id)
    )


async def _export_model_files(kernel: Kernel, archive: ExportArchive) -> None:
    """Each uploaded model version's file, as ``models/<name>/<version>.onnx``."""
    store = internals(kernel).models.store
    versions = await kernel.db.execute(
        select(ModelVersion.name, ModelVersion.version, ModelVersion.sha256)
        .where(ModelVersion.tenant_id == kernel.tenant_id)
        .order_by(ModelVersion.name, ModelVersion.version)
    )
    for name, version, sha256 in versions:
        data = await asyncio.to_thread(store.get, sha256)
        await archive.add_file(f"models/{name}/{version}.onnx", data)


async def erase_kernel_data(kernel: Kernel, subject: Subject) -> dict[str, int]:
    """The member leaves the tenant (the last owner cannot: ``IdentityError``); the API keys
    they made are revoked and unlinked from them, their sessions in the tenant end, the models
    they uploaded stay the tenant's without their name."""
    mail = await erase_mail(kernel, subject)
    if subject.user_id is None:
        return mail
    db, tenant_id, user_id = kernel.db, kernel.tenant_id, subject.user_id
    assert tenant_id is not None
    revoked = await set_member_role(db, tenant_id, user_id, None)
    keys: Any = await db.execute(
        update(ApiKey)
        .where(ApiKey.tenant_id == tenant_id, ApiKey.created_by == user_id)
        .values(created_by=None)
        .execution_options(synchronize_session=False)
    )
    sessions: Any = await db.execute(
        delete(RefreshToken).where(
            RefreshToken.user_id == user_id, RefreshToken.active_tenant_id == tenant_id
        )
    )
    models: Any = await db.execute(
        update(ModelVersion)
        .where(ModelVersion.tenant_id == tenant_id, ModelVersion.created_by == user_id)
        .values(created_by=None)
        .execution_options(synchronize_session=False)
    )
    runs: Any = await db.execute(
        update(TrainingRun)
        .where(TrainingRun.tenant_id == tenant_id, TrainingRun.requested_by == user_id)
        .values(requested_by=None)
        .execution_options(synchronize_session=False)
    )
    schedules: Any = await db.execute(
        update(TrainingSchedule)
        .where(TrainingSchedule.tenant_id == tenant_id, TrainingSchedule.updated_by == user_id)
        .values(updated_by=None)
        .execution_options(synchronize_session=False)
    )
    files = await erase_file_uploader(kernel, subject)
    return {
        **mail,
        "backplane_files": files,
        "backplane_memberships": 1,
        "backplane_api_keys": keys.rowcount,
        "backplane_api_keys_revoked": len(revoked),
        "backplane_refresh_tokens": sessions.rowcount,
        "backplane_model_versions": models.rowcount,
        "backplane_training_runs": runs.rowcount,
        "backplane_training_schedules": schedules.rowcount,
    }


async def delete_kernel_data(kernel: Kernel, after_commit: Any) -> None:
    """What the generic pass cannot delete: once its model versions are gone, the files no
    other version uses, and its stored objects. (Its login sessions and queued tasks reference
    it: the generic pass deletes them with its rows.)"""
    db, tenant_id = kernel.db, kernel.tenant_id
    hashes = set(
        await db.scalars(
            select(ModelVersion.sha256).where(ModelVersion.tenant_id == tenant_id).distinct()
        )
    )
    if hashes:
        after_commit(_ModelFiles(kernel, hashes, time.time()).discard)
    assert tenant_id is not None
    after_commit(delete_tenant_objects(kernel, tenant_id))


class _ModelFiles:
    """The deleted tenant's model files, deleted unless another version refers to them or
    they were stored again since the deletion began (an upload of the same bytes in flight)."""

    def __init__(self, kernel: Kernel, hashes: set[str], started: float) -> None:
        self._rails = internals(kernel)
        self.hashes = hashes
        self.started = started

    async def discard(self) -> int:
        store = self._rails.models.store
        reason = "privacy: model files of a deleted tenant"
        async with self._rails.database.maintenance(reason, audit=False) as session:
            used = set(
                await session.scalars(
                    select(ModelVersion.sha256).where(ModelVersion.sha256.in_(self.hashes))
                )
            )
        discard = getattr(store, "discard", None)
        if discard is None:
            log.warning("storage backend cannot discard files: the retention sweep will")
            return 0
        unused = sorted(self.hashes - used)
        gone = [await asyncio.to_thread(discard, sha, self.started) for sha in unused]
        return sum(bool(g) for g in gone)
