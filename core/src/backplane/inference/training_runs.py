"""Training runs: the table that tracks each run, and starting, listing and showing them.

A run is a row (``queued`` → ``running`` → ``succeeded`` | ``failed``) with its progress, its
error, and once it succeeds the version it registered and that version's model card. Starting
one writes the row and enqueues the training task in the caller's transaction (the outbox), so
a request that rolls back leaves neither.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import JSON, DateTime, ForeignKeyConstraint, Index, String, Uuid, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from backplane._contract import Trainer
from backplane.audit.record import record as audit
from backplane.db.base import Base
from backplane.db.locks import lock_row
from backplane.db.tenancy import TenantScoped
from backplane.identity.models import Tenant, TenantPlugin
from backplane.inference.cards import model_card
from backplane.inference.registry import ModelOut, RegistryError

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
ACTIVE = (QUEUED, RUNNING)
STEPS = (
    "queued",
    "reading data",
    "fitting",
    "evaluating",
    "converting",
    "checking",
    "importance",
)
"""The progress a run reports, in order (then ``registering`` and ``done``)."""
TRAIN_TASK = "core.train_model"


class TrainingRun(TenantScoped, Base):
    """One run of a trainer for one tenant's model."""

    __tablename__ = "backplane_training_runs"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
        Index("ix_backplane_training_runs_model", "tenant_id", "model", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    model: Mapped[str] = mapped_column(String(100))
    trainer: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default=QUEUED)
    progress: Mapped[str] = mapped_column(String(40), default="")
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    version: Mapped[str | None] = mapped_column(String(50), nullable=True)
    card: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """The model card: metrics (and the constant baseline's), rows, parameters, trainer."""
    requested_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TrainingRunOut(msgspec.Struct, kw_only=True):
    id: str
    model: str
    trainer: str
    status: str
    progress: str
    error: str | None
    version: str | None
    card: dict[str, Any] | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None


def run_out(row: TrainingRun) -> TrainingRunOut:
    def iso(when: datetime | None) -> str | None:
        return when.isoformat() if when else None

    return TrainingRunOut(
        id=str(row.id),
        model=row.model,
        trainer=row.trainer,
        status=row.status,
        progress=row.progress,
        error=row.error,
        version=row.version,
        card=row.card,
        created_at=iso(row.created_at),
        started_at=iso(row.started_at),
        finished_at=iso(row.finished_at),
    )


def choose_trainer(trainers: dict[str, Trainer], model: str, name: str | None) -> Trainer:
    """The trainer for ``model``: the one named, or the only one registered for it (404/422)."""
    mine = [t for t in trainers.values() if t.model == model]
    if not mine:
        raise RegistryError(f"no trainer is registered for model {model!r}", 404)
    if name is None:
        if len(mine) > 1:
            names = ", ".join(sorted(t.name for t in mine))
            raise RegistryError(f"model {model!r} has several trainers; name one of: {names}", 422)
        return mine[0]
    for trainer in mine:
        if trainer.name == name:
            return trainer
    raise RegistryError(f"no trainer {name!r} for model {model!r}", 404)


async def start_run(
    db: AsyncSession,
    tasks: Any,
    *,
    tenant_id: uuid.UUID,
    trainer: Trainer,
    limit: int,
    requested_by: uuid.UUID | None,
    usage: Any = None,
) -> TrainingRun:
    """Write a queued run and enqueue its task; 429 when the tenant has ``limit`` active
    (counted under the tenant row's lock: concurrent requests cannot both pass the cap).
    With ``usage`` (the request's recorder) the run's first second is charged on
    ``inference.training_seconds`` after the lock, so a spent quota refuses it (429) and
    concurrent requests take their locks in one order (tenant, then usage rows)."""
    plugin = trainer.name.split(".", 1)[0]  # register_trainers checked the prefix
    switch = await db.get(TenantPlugin, {"tenant_id": tenant_id, "plugin": plugin})
    if switch is not None and not switch.enabled:
        raise RegistryError(
            f"trainer {trainer.name!r} belongs to plugin {plugin!r}, which this tenant has "
            "turned off",
            404,
        )
    await lock_row(db, Tenant, tenant_id)
    active = await db.scalar(
        select(func.count())
        .select_from(TrainingRun)
        .where(TrainingRun.tenant_id == tenant_id, TrainingRun.status.in_(ACTIVE))
    )
    if (active or 0) >= limit:
        raise RegistryError(
            f"{active} training runs are queued or running for this tenant "
            f"(training.max_concurrent_per_tenant is {limit}); wait for one to finish",
            429,
        )
    if usage is not None:
        await usage.record("inference.training_seconds", 1)  # QuotaExceeded: 429
    row = TrainingRun(
        tenant_id=tenant_id,
        model=trainer.model,
        trainer=trainer.name,
        requested_by=requested_by,
        created_at=datetime.now(UTC),  # known now: the 202 shows it without a reload
    )
    db.add(row)
    await db.flush()
    tasks.enqueue_for(tenant_id, TRAIN_TASK, str(row.id))
    details = {"run": str(row.id), "trainer": trainer.name}
    await audit(
        db,
        "model.training_requested",
        tenant_id=tenant_id,
        target=("model", trainer.model),
        details=details,
    )
    return row


async def list_runs(db: AsyncSession, tenant_id: uuid.UUID, model: str) -> list[TrainingRunOut]:
    rows = await db.scalars(
        select(TrainingRun)
        .where(TrainingRun.tenant_id == tenant_id, TrainingRun.model == model)
        .order_by(TrainingRun.created_at.desc())
        .limit(100)
    )
    return [run_out(r) for r in rows]


async def get_run(
    db: AsyncSession, tenant_id: uuid.UUID, model: str, run_id: str
) -> TrainingRunOut:
    try:
        key = uuid.UUID(run_id)
    except ValueError:
        raise RegistryError(f"no training run {run_id!r}", 404) from None
    row = await db.scalar(
        select(TrainingRun).where(
            TrainingRun.tenant_id == tenant_id, TrainingRun.model == model, TrainingRun.id == key
        )
    )
    if row is None:
        raise RegistryError(f"no training run {run_id!r} of model {model!r}", 404)
    return run_out(row)


async def with_cards(db: AsyncSession, tenant_id: uuid.UUID, versions: list[ModelOut]) -> None:
    """Give each trained version in ``versions`` (one model's) the card of the run that
    registered it."""
    own = [v for v in versions if v.source == "upload"]
    if not own:
        return
    rows = await db.execute(
        select(
            TrainingRun.id, TrainingRun.version, TrainingRun.card, TrainingRun.finished_at
        ).where(
            TrainingRun.tenant_id == tenant_id,
            TrainingRun.model == own[0].name,
            TrainingRun.status == SUCCEEDED,
            TrainingRun.version.in_([v.version for v in own]),
        )
    )
    cards = {
        version: model_card(str(run_id), card, finished)
        for run_id, version, card, finished in rows
        if card is not None
    }
    for out in own:
        out.card = cards.get(out.version)
