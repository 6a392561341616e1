"""``/api/models/{name}/train`` and ``/api/models/{name}/training-runs``: training runs of the
caller's tenant. Another tenant's runs answer 404, like missing ones."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.identity.auth import Principal, requires
from backplane.inference.api import _registry_error
from backplane.inference.registry import RegistryError, check_name
from backplane.inference.training_runs import (
    TrainingRunOut,
    choose_trainer,
    get_run,
    list_runs,
    run_out,
    start_run,
)
from backplane.kernel import Kernel
from backplane.state import rails_of

Req = Request[Principal, Any, Any]


class TrainRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of ``POST /api/models/{name}/train`` (optional)."""

    trainer: str | None = None
    """The trainer to run; needed only when several are registered for the model."""


class TrainingController(Controller):
    path = "/models"
    tags = ["models"]
    exception_handlers = {RegistryError: _registry_error}

    @post(
        "/{name:str}/train",
        guards=[requires("models.manage")],
        status_code=202,
        summary="Train a new version of the model with a registered trainer",
        description=(
            "Queues a training run (202 with its id): the trainer reads the tenant's own data, "
            "the kernel fits, measures on a seeded holdout, converts to ONNX, checks ONNX "
            "against scikit-learn and registers a new version with its model card. "
            "Charged on `inference.training_seconds` (429 past the quota, or when "
            "`training.max_concurrent_per_tenant` runs are active)."
        ),
    )
    async def train(
        self,
        request: Req,
        db: NamedDependency[AsyncSession],
        kernel: NamedDependency[Kernel],
        name: FromPath[str],
        data: JSONBody[TrainRequest | None] = None,
    ) -> Response[TrainingRunOut]:
        rails = rails_of(request)
        check_name(rails.models, name, None)
        trainer = choose_trainer(rails.trainers, name, data.trainer if data else None)
        row = await start_run(
            db,
            kernel.tasks,
            tenant_id=request.user.tenant_id,
            trainer=trainer,
            limit=rails.settings.training.max_concurrent_per_tenant,
            requested_by=request.user.user_id,
            usage=kernel.usage,
        )
        return Response(run_out(row), status_code=202)

    @get(
        "/{name:str}/training-runs",
        guards=[requires("models.read")],
        summary="The model's training runs, newest first (at most 100)",
    )
    async def runs(
        self, request: Req, db: NamedDependency[AsyncSession], name: FromPath[str]
    ) -> list[TrainingRunOut]:
        runs = await list_runs(db, request.user.tenant_id, name)
        trainable = any(t.model == name for t in rails_of(request).trainers.values())
        if not runs and not trainable:
            # As for every other model route: a name this tenant cannot train, and has never
            # trained, is not found (another tenant's model answers the same).
            raise RegistryError(f"no trainer or training run for {name!r}", 404)
        return runs

    @get(
        "/{name:str}/training-runs/{run_id:str}",
        guards=[requires("models.read")],
        summary="One training run: status, progress, error, version and model card",
    )
    async def run(
        self,
        request: Req,
        db: NamedDependency[AsyncSession],
        name: FromPath[str],
        run_id: FromPath[str],
    ) -> TrainingRunOut:
        return await get_run(db, request.user.tenant_id, name, run_id)
