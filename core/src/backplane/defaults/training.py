"""Training: the training task, its meter, and the training routes under ``/api/models``."""

from __future__ import annotations

from typing import Any

from backplane._contract import Meter
from backplane.hookspecs import hookimpl


@hookimpl
def register_routes(register: Any) -> None:
    from backplane.inference.schedule_api import TrainingScheduleController
    from backplane.inference.training_api import TrainingController

    register(TrainingController, TrainingScheduleController)


@hookimpl
def register_meters(register: Any) -> None:
    register(
        Meter(
            code="inference.training_seconds",
            unit="second",
            aggregation="sum",
            description="Wall-clock seconds of training runs (one charged when a run is queued)",
        )
    )


@hookimpl
def register_tasks(register: Any, settings: Any) -> None:
    from backplane.inference.schedules import retrain_scheduled
    from backplane.inference.training import train_model

    # A run is not retried: a failure is its recorded status (start another run instead).
    limit_ms = int(settings.training.time_limit_s * 1000) + 120_000
    register(train_model, queue="backplane", max_retries=0, time_limit_ms=limit_ms)
    # each minute: start the runs whose schedule's time has come (one per time, whatever runs)
    register(retrain_scheduled, queue="backplane", schedule="* * * * *")
