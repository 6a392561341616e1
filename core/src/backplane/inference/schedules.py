"""Retraining on a schedule: a cron expression per tenant model, run by the kernel's scheduler.

Setting a schedule (``PUT /api/models/{name}/training-schedule``, ``backplane models schedule``)
stores the cron expression (five fields, UTC, parsed by croniter) and the trainer. The kernel's
periodic task ``core.retrain_scheduled`` (every minute, leased per minute by the task scheduler
like every periodic job) looks for schedules whose latest time has passed since the one last
taken, and for each starts a normal training run under the tenant (:func:`start_run`: the
tenant's cap on active runs, its ``inference.training_seconds`` quota, its plugin switch, the
audit row). A time is *taken* with one conditional update of the schedule row (``last_slot``
moves from the value read to the new time), so however many processes run the task at once,
and however often it is redelivered, one time starts at most one run. A run refused (cap,
quota, trainer gone) is recorded in ``last_error`` and the schedule waits for its next time;
times missed while nothing ran are not made up (only the latest one runs).
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from croniter import croniter
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backplane._contract import Trainer
from backplane.audit.record import record as audit
from backplane.billing.usage import UsageRecorder
from backplane.db.tenancy import rebind_tenant
from backplane.inference.registry import RegistryError
from backplane.inference.schedule_models import TrainingSchedule
from backplane.inference.training_runs import choose_trainer, start_run
from backplane.kernel import Kernel, internals, maintenance_session

RETRAIN_TASK = "core.retrain_scheduled"


class ScheduleOut(msgspec.Struct, kw_only=True):
    model: str
    trainer: str
    cron: str
    """Five cron fields, in UTC."""
    next_run_at: str
    last_slot: str | None
    """The latest scheduled time taken (its run started, or was refused: ``last_error``)."""
    last_run_id: str | None
    last_error: str | None


def _iso(when: datetime | None) -> str | None:
    return _utc(when).isoformat() if when else None


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def schedule_out(row: TrainingSchedule, now: datetime | None = None) -> ScheduleOut:
    upcoming: datetime = croniter(row.cron, now or datetime.now(UTC)).get_next(datetime)
    return ScheduleOut(
        model=row.model,
        trainer=row.trainer,
        cron=row.cron,
        next_run_at=_utc(upcoming).isoformat(),
        last_slot=_iso(row.last_slot),
        last_run_id=str(row.last_run_id) if row.last_run_id else None,
        last_error=row.last_error,
    )


def latest_slot(cron: str, now: datetime) -> datetime:
    """The latest time ``cron`` names at or before ``now`` (UTC, whole seconds)."""
    slot: datetime = croniter(cron, now).get_prev(datetime)
    return _utc(slot).replace(microsecond=0)


def check_cron(cron: str, min_interval_s: float, now: datetime | None = None) -> str:
    """``cron`` normalised (single spaces), or 422 naming what is wrong with it."""
    text = " ".join(cron.split())
    if len(text.split(" ")) != 5 or not croniter.is_valid(text):
        raise RegistryError(
            f"schedule {cron!r} is not a cron expression of five fields "
            "(minute hour day-of-month month day-of-week), e.g. '0 3 * * *'",
            422,
        )
    times = croniter(text, now or datetime.now(UTC))
    upcoming = [times.get_next(datetime) for _ in range(12)]
    gap = min((b - a).total_seconds() for a, b in itertools.pairwise(upcoming))
    if gap < min_interval_s:
        raise RegistryError(
            f"schedule {text!r} runs every {gap:g} s at times; training.min_schedule_interval_s "
            f"is {min_interval_s:g}",
            422,
        )
    return text


async def set_schedule(
    db: AsyncSession,
    trainers: dict[str, Trainer],
    *,
    tenant_id: uuid.UUID,
    model: str,
    cron: str,
    trainer_name: str | None,
    min_interval_s: float,
    updated_by: uuid.UUID | None,
) -> TrainingSchedule:
    """Create or replace the model's schedule (404/422 for an unknown trainer or bad cron)."""
    trainer = choose_trainer(trainers, model, trainer_name)
    cron = check_cron(cron, min_interval_s)
    now = datetime.now(UTC)
    row = await db.scalar(
        select(TrainingSchedule)
        .where(TrainingSchedule.tenant_id == tenant_id, TrainingSchedule.model == model)
        .with_for_update()
    )
    try:
        async with db.begin_nested():
            if row is None:
                row = TrainingSchedule(tenant_id=tenant_id, model=model)
                db.add(row)
            row.trainer, row.cron, row.updated_by = trainer.name, cron, updated_by
            row.updated_at = now
            row.last_slot = latest_slot(cron, now)  # from now on: setting never trains at once
            row.last_error = None
            await db.flush()
    except IntegrityError:  # another request created it meanwhile
        raise RegistryError(f"the schedule of {model!r} was set concurrently; retry", 409) from None
    details = {"cron": cron, "trainer": trainer.name}
    await audit(
        db,
        "model.training_scheduled",
        tenant_id=tenant_id,
        target=("model", model),
        details=details,
    )
    return row


async def get_schedule(db: AsyncSession, tenant_id: uuid.UUID, model: str) -> TrainingSchedule:
    row = await db.scalar(
        select(TrainingSchedule).where(
            TrainingSchedule.tenant_id == tenant_id, TrainingSchedule.model == model
        )
    )
    if row is None:
        raise RegistryError(f"model {model!r} has no training schedule", 404)
    return row


async def delete_schedule(db: AsyncSession, tenant_id: uuid.UUID, model: str) -> None:
    row = await get_schedule(db, tenant_id, model)
    await db.delete(row)
    await db.flush()
    details = {"cron": None, "trainer": row.trainer}
    await audit(
        db,
        "model.training_scheduled",
        tenant_id=tenant_id,
        target=("model", model),
        details=details,
    )


async def retrain_scheduled(kernel: Kernel) -> None:
    """Task (every minute): start a training run for every schedule whose time has come."""
    reason = "retraining schedules start the runs that are due"
    async with maintenance_session(kernel, reason) as session:
        await start_due(session, kernel, datetime.now(UTC))


async def start_due(session: AsyncSession, kernel: Kernel, now: datetime) -> list[uuid.UUID]:
    """Take each due schedule's latest time and start its run; the runs started. ``session``
    sees every tenant (a maintenance session); each schedule is handled bound to its tenant,
    in a savepoint of its own."""
    schedules = (
        await session.execute(
            select(
                TrainingSchedule.id,
                TrainingSchedule.tenant_id,
                TrainingSchedule.cron,
                TrainingSchedule.last_slot,
            ).order_by(TrainingSchedule.tenant_id, TrainingSchedule.model)  # one lock order
        )
    ).all()
    started: list[uuid.UUID] = []
    for schedule_id, tenant_id, cron, last_slot in schedules:
        slot = latest_slot(cron, now)
        if last_slot is not None and _utc(last_slot) >= slot:
            continue
        await rebind_tenant(session, tenant_id)
        async with session.begin_nested():
            run = await _take(session, kernel, schedule_id, tenant_id, last_slot, slot)
        if run is not None:
            started.append(run)
    await rebind_tenant(session, None)
    return started


async def _take(
    session: AsyncSession,
    kernel: Kernel,
    schedule_id: uuid.UUID,
    tenant_id: uuid.UUID,
    seen: datetime | None,
    slot: datetime,
) -> uuid.UUID | None:
    """Move ``last_slot`` from ``seen`` to ``slot`` (nothing when another process did first),
    then start the run; a refusal is the schedule's ``last_error``."""
    unchanged = (
        TrainingSchedule.last_slot.is_(None) if seen is None else TrainingSchedule.last_slot == seen
    )
    taken: Any = await session.execute(
        update(TrainingSchedule)
        .where(TrainingSchedule.id == schedule_id, unchanged)
        .values(last_slot=slot)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:
        return None
    row = await session.get(TrainingSchedule, schedule_id, populate_existing=True)
    assert row is not None
    rails = internals(kernel)
    try:
        async with session.begin_nested():
            trainer = choose_trainer(rails.trainers, row.model, row.trainer)
            run = await start_run(
                session,
                rails.tasks.queue_for(session),
                tenant_id=tenant_id,
                trainer=trainer,
                limit=rails.settings.training.max_concurrent_per_tenant,
                requested_by=None,
                usage=UsageRecorder(session, rails.meters, rails.events),
            )
    except Exception as exc:  # noqa: BLE001  (cap, quota, trainer gone: recorded, not raised)
        row.last_error = f"{slot.isoformat()}: {getattr(exc, 'message', None) or exc}"[:500]
        return None
    row.last_run_id, row.last_error = run.id, None
    return run.id
