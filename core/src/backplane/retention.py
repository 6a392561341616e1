"""History the kernel keeps for a while, then deletes: finished tasks, past schedule periods,
finished billing webhook deliveries, model files no version refers to, and deleted or orphaned
tenant files (an hourly kernel task).

Without this the outbox gains a row per task, the schedule table one per job per period (the
webhook dispatcher alone: 1,440 a day) and the webhook tables one per event and delivery,
forever. Failed tasks and pending deliveries are never deleted here: they wait for an operator
or a retry.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.billing.webhooks.models import FAILED, SUCCEEDED, WebhookDelivery, WebhookEvent
from backplane.files.storage import FileStore
from backplane.files.sweep import sweep_files
from backplane.inference.models import ModelVersion
from backplane.inference.storage import ArtifactStore
from backplane.kernel import Kernel, internals, maintenance_session
from backplane.settings import Settings
from backplane.tasks.models import DONE, OutboxMessage, ScheduleRun


async def prune_history(kernel: Kernel) -> None:
    """Task (hourly): delete what :func:`prune` selects, with the application's settings and
    the store ``storage.backend`` configures."""
    rails = internals(kernel)
    reason = "retention deletes every tenant's old history"
    async with maintenance_session(kernel, reason) as session:
        await prune(session, kernel.settings, rails.models.store, files=rails.files)


async def prune(
    session: AsyncSession,
    settings: Settings,
    store: ArtifactStore,
    now: datetime | None = None,
    *,
    files: FileStore | None = None,
) -> dict[str, int]:
    """Delete history older than the configured ``keep`` settings, the files in ``store``
    no model version refers to, and (with ``files``) deleted and orphaned tenant files; the
    counts deleted.

    ``session`` sees every tenant (a maintenance session)."""
    now = now or datetime.now(UTC)
    tasks_before = now - timedelta(seconds=settings.tasks.keep_finished_s)
    hooks_before = now - timedelta(seconds=settings.webhooks.keep_history_s)
    counts: dict[str, int] = {}
    result: Any = await session.execute(
        delete(ScheduleRun).where(ScheduleRun.period_start < tasks_before)
    )
    counts["schedule_periods"] = result.rowcount
    result = await session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.status == DONE, OutboxMessage.finished_at < tasks_before
        )
    )
    counts["tasks"] = result.rowcount
    result = await session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.status.in_([SUCCEEDED, FAILED]),
            WebhookDelivery.created_at < hooks_before,
        )
    )
    counts["webhook_deliveries"] = result.rowcount
    undelivered = ~exists(
        select(WebhookDelivery.id).where(WebhookDelivery.event_id == WebhookEvent.id)
    )
    result = await session.execute(
        delete(WebhookEvent).where(WebhookEvent.created_at < hooks_before, undelivered)
    )
    counts["webhook_events"] = result.rowcount
    referenced = set(await session.scalars(select(ModelVersion.sha256).distinct()))
    cutoff = now.timestamp() - settings.inference.keep_unreferenced_s
    counts["model_files"] = await asyncio.to_thread(store.sweep, referenced, cutoff)
    if files is not None:
        counts |= await sweep_files(session, files, settings.files.keep_deleted_s, now)
    return counts
