"""``/api/models/{name}/training-schedule``: when the caller's tenant retrains a model.

Reading needs ``models.read``, changing ``models.manage``; another tenant's schedule answers
404 like a missing one. See :mod:`backplane.inference.schedules` for what runs and when.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.identity.auth import Principal, requires
from backplane.inference.api import _registry_error
from backplane.inference.registry import RegistryError, check_name
from backplane.inference.schedules import (
    ScheduleOut,
    delete_schedule,
    get_schedule,
    schedule_out,
    set_schedule,
)
from backplane.state import rails_of

Req = Request[Principal, Any, Any]
PATH = "/{name:str}/training-schedule"


class ScheduleRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of ``PUT /api/models/{name}/training-schedule``."""

    cron: str
    """Five cron fields in UTC, e.g. ``"0 3 * * *"`` (nightly at 03:00)."""
    trainer: str | None = None
    """Needed only when several trainers are registered for the model."""


class TrainingScheduleController(Controller):
    path = "/models"
    tags = ["models"]
    exception_handlers = {RegistryError: _registry_error}

    @put(
        PATH,
        guards=[requires("models.manage")],
        summary="Retrain the model on a schedule (cron, UTC)",
        description=(
            "Creates or replaces the model's schedule. At each time the cron expression names "
            "(checked every minute) a normal training run starts under the tenant, exactly "
            "once however many processes run, subject to the tenant's cap on active runs and "
            "its `inference.training_seconds` quota (a refused time is shown as `last_error`). "
            "422 for an expression that is not five fields or runs more often than "
            "`training.min_schedule_interval_s`; 404 when no trainer is registered for the model."
        ),
    )
    async def put_schedule(
        self,
        request: Req,
        db: NamedDependency[AsyncSession],
        name: FromPath[str],
        data: JSONBody[ScheduleRequest],
    ) -> ScheduleOut:
        rails = rails_of(request)
        check_name(rails.models, name, None)
        row = await set_schedule(
            db,
            rails.trainers,
            tenant_id=request.user.tenant_id,
            model=name,
            cron=data.cron,
            trainer_name=data.trainer,
            min_interval_s=rails.settings.training.min_schedule_interval_s,
            updated_by=request.user.user_id,
        )
        return schedule_out(row)

    @get(PATH, guards=[requires("models.read")], summary="The model's retraining schedule")
    async def get_schedule(
        self, request: Req, db: NamedDependency[AsyncSession], name: FromPath[str]
    ) -> ScheduleOut:
        return schedule_out(await get_schedule(db, request.user.tenant_id, name))

    @delete(
        PATH,
        guards=[requires("models.manage")],
        summary="Stop retraining the model on a schedule",
        status_code=204,
    )
    async def delete_schedule(
        self, request: Req, db: NamedDependency[AsyncSession], name: FromPath[str]
    ) -> None:
        await delete_schedule(db, request.user.tenant_id, name)
