"""The training task: run one queued training run to a new model version or a clear failure.

The trainer's ``fit(kernel)`` reads the tenant's data in this process (through ``kernel.db``);
the fit itself, the metrics, the conversion to ONNX and the ONNX-versus-scikit-learn check run
in a subprocess (:mod:`backplane.inference._fit`) under ``training.memory_bytes`` of address
space, killed once ``training.time_limit_s`` has passed since the run started. Only a run that
passed every step registers a version, through the same validation as an upload
(:func:`backplane.inference.registry.add_model`), so a failed or stopped run leaves none.
Progress is written to the run row and published live (``models.training``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.audit.record import record as audit
from backplane.billing.usage import UsageItem
from backplane.db.tenancy import bind_tenant
from backplane.inference.aliases import PRODUCTION, get_alias
from backplane.inference.limits import ModelRejected
from backplane.inference.promotion import promote_if_better
from backplane.inference.registry import RegistryError, add_model
from backplane.inference.rollout import PromotionDecision
from backplane.inference.training_runs import FAILED, RUNNING, SUCCEEDED, TrainingRun
from backplane.kernel import Kernel, Rails, internals

LIVE_EVENT = "models.training"


class TrainingFailedError(Exception):
    """A run that cannot produce a version; the message is the run's ``error``."""


@contextlib.asynccontextmanager
async def _committed(kernel: Kernel, rails: Rails) -> AsyncIterator[AsyncSession]:
    """A transaction of the run's tenant, committed when the block ends, so status and progress
    are visible while the run goes on (SQLite: the task's own session, one writer)."""
    if rails.settings.resolved_database_url().startswith("sqlite"):
        try:
            yield kernel.db
        except BaseException:
            await kernel.db.rollback()
            raise
        await kernel.db.commit()
        return
    async with rails.database.sessions() as own:
        bind_tenant(own, kernel.tenant_id)
        async with own.begin():
            yield own


async def _update(kernel: Kernel, rails: Rails, run_id: uuid.UUID, **values: Any) -> None:
    async with _committed(kernel, rails) as session:
        row = await session.get(TrainingRun, run_id)
        assert row is not None
        for key, value in values.items():
            setattr(row, key, value)
    if "progress" in values or "status" in values:
        event = {"run": str(run_id), **{k: v for k, v in values.items() if isinstance(v, str)}}
        with contextlib.suppress(Exception):  # a live stream being down never fails training
            await kernel.live.publish(LIVE_EVENT, event)


def _fit_env() -> dict[str, str]:
    env = dict(os.environ)
    # the estimator's classes are unpickled there: the same import path as this process
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.update(MALLOC_ARENA_MAX="2", PYTHONDONTWRITEBYTECODE="1")
    return env


async def _run_fit(
    kernel: Kernel, run_id: uuid.UUID, payload: bytes, metric: str, deadline: float
) -> tuple[dict[str, Any], bytes]:
    rails = internals(kernel)
    config = rails.settings.training
    settings = {
        "metric": metric,
        "holdout_fraction": config.holdout_fraction,
        "seed": config.seed,
        "tolerance": config.tolerance,
        "importance_repeats": config.importance_repeats,
    }
    with tempfile.TemporaryDirectory(prefix="backplane-fit-") as workdir:
        out = Path(workdir) / "model.onnx"
        # stderr to a file, not a pipe: a chatty estimator (warnings) can never fill a pipe
        # nobody reads until the end and stall the fit
        errors = (Path(workdir) / "stderr").open("w+b")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "backplane.inference._fit",
            str(config.memory_bytes),
            json.dumps(settings),
            str(out),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
            cwd=workdir,
            env=_fit_env(),
            start_new_session=True,
        )
        try:
            verdict = await asyncio.wait_for(
                _converse(kernel, rails, run_id, process, payload, errors),
                timeout=max(deadline - time.monotonic(), 0.01),
            )
        except TimeoutError:
            raise TrainingFailedError(
                f"training took longer than training.time_limit_s "
                f"({config.time_limit_s:g} s); the fit process was killed"
            ) from None
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            errors.close()
        if not verdict.get("ok"):
            if verdict.get("kind") == "memory":
                raise TrainingFailedError(
                    f"the fit needed more than training.memory_bytes ({config.memory_bytes}) "
                    f"of memory: {verdict.get('error', '')}"
                )
            raise TrainingFailedError(f"the fit failed: {verdict.get('error', 'no verdict')}")
        return verdict, out.read_bytes()


async def _converse(
    kernel: Kernel, rails: Rails, run_id: uuid.UUID, process: Any, payload: bytes, errors: Any
) -> dict[str, Any]:
    """Feed the pickle, relay progress lines, return the verdict line."""
    process.stdin.write(payload)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        await process.stdin.drain()
    process.stdin.close()
    verdict: dict[str, Any] = {}
    async for line in process.stdout:
        if not line.startswith(b"{"):
            continue
        message = json.loads(line)
        if "step" in message:
            await _update(kernel, rails, run_id, progress=str(message["step"])[:40])
        else:
            verdict = message
    await process.wait()
    if not verdict:
        errors.seek(max(errors.seek(0, 2) - 4000, 0))
        err = errors.read().decode("utf-8", "replace")
        tail = " ".join(err.split())[-500:]
        if "MemoryError" in tail or "bad_alloc" in tail:
            return {"ok": False, "kind": "memory", "error": tail}
        return {"ok": False, "error": f"the fit process ended ({process.returncode}): {tail}"}
    return verdict


async def _features(kernel: Kernel, trainer: Any, deadline: float) -> bytes:
    """Call the trainer's ``fit(kernel)`` (within the time limit); the pickle for the child."""
    result = trainer.fit(kernel)
    if asyncio.iscoroutine(result):
        result = await asyncio.wait_for(result, timeout=max(deadline - time.monotonic(), 0.01))
    try:
        features, labels, estimator, *baseline = result
        if len(baseline) > 1:
            raise ValueError(len(result))
    except (TypeError, ValueError):
        raise TrainingFailedError(
            f"trainer {trainer.name!r} must return (features, labels, estimator) or "
            "(features, labels, estimator, baseline_scores)"
        ) from None
    rows, limits = len(labels), kernel.settings.training
    if not limits.min_rows <= rows <= limits.max_rows:
        raise TrainingFailedError(
            f"the trainer returned {rows} rows; training needs between "
            f"training.min_rows ({limits.min_rows}) and training.max_rows ({limits.max_rows})"
        )
    try:
        data = (features, labels, estimator, baseline[0] if baseline else None)
        return pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001  (pickling calls arbitrary __reduce__ code)
        message = f"the trainer's estimator cannot be sent to the fit: {exc}"
        raise TrainingFailedError(message) from None


async def train_model(kernel: Kernel, run_id: str) -> None:
    """Task: run one queued training run for its tenant. A finished run is left alone; one
    found ``running`` was started by an attempt that died (a worker killed mid-run: the outbox
    delivers the task again), so it is failed rather than left blocking the tenant's cap."""
    rails, key = internals(kernel), uuid.UUID(run_id)
    async with _committed(kernel, rails) as session:
        row = await session.scalar(
            select(TrainingRun).where(TrainingRun.id == key).with_for_update()
        )
        if row is None or row.status in (SUCCEEDED, FAILED):
            return
        if row.status == RUNNING:  # delivered again: the attempt that started it has died
            row.status, row.finished_at = FAILED, datetime.now(UTC)
            row.error = "interrupted: the worker running it stopped; start a new run"
            return
        row.status, row.progress, row.started_at = RUNNING, "reading data", datetime.now(UTC)
        model, trainer_name, requested_by = row.model, row.trainer, row.requested_by
    started = time.monotonic()
    deadline = started + rails.settings.training.time_limit_s
    try:
        trainer = rails.trainers.get(trainer_name)
        if trainer is None:
            raise TrainingFailedError(f"trainer {trainer_name!r} is no longer registered")
        try:
            payload = await _features(kernel, trainer, deadline)
        except TimeoutError:
            raise TrainingFailedError(
                f"the trainer's data took longer than training.time_limit_s "
                f"({rails.settings.training.time_limit_s:g} s)"
            ) from None
        verdict, data = await _run_fit(kernel, key, payload, trainer.metric, deadline)
        await _update(kernel, rails, key, progress="registering")
        card = _card(trainer, verdict)
        async with _committed(kernel, rails) as session:
            assert kernel.tenant_id is not None
            version = await add_model(
                session,
                internals(kernel).models,
                tenant_id=kernel.tenant_id,
                name=model,
                data=data,
                description=f"trained by {trainer.name}",
                created_by=requested_by,
            )
            version.feature_profile = verdict.get("feature_profile")  # for drift monitoring
            run = await session.get(TrainingRun, key)
            assert run is not None
            run.status, run.progress, run.version, run.card = (
                SUCCEEDED,
                "done",
                version.version,
                card,
            )
            run.finished_at = datetime.now(UTC)
            details = {"run": run_id, "trainer": trainer.name, "sha256": version.sha256}
            target = ("model", f"{model}/{version.version}")
            await audit(
                session, "model.trained", tenant_id=kernel.tenant_id, target=target, details=details
            )
            decision = (
                _short_of_baseline(card) if _gated(trainer, card) else None
            ) or await _promote(kernel, session, model, version.version, card)
            run.card = {**card, "promotion": {"promoted": decision.promote, "why": decision.reason}}
            await _meter(kernel, session, started)
    except Exception as exc:  # noqa: BLE001  (whatever stops a run is its recorded error)
        message = exc.message if isinstance(exc, ModelRejected) else str(exc)
        async with _committed(kernel, rails) as session:
            run = await session.get(TrainingRun, key)
            assert run is not None
            run.status, run.error = FAILED, (message or type(exc).__name__)[:2000]
            run.finished_at = datetime.now(UTC)
            await _meter(kernel, session, started)
        with contextlib.suppress(Exception):
            await kernel.live.publish(LIVE_EVENT, {"run": run_id, "status": FAILED})
        return
    with contextlib.suppress(Exception):
        await kernel.live.publish(LIVE_EVENT, {"run": run_id, "status": SUCCEEDED})


async def _meter(kernel: Kernel, session: AsyncSession, started: float) -> None:
    """The run's seconds beyond the one charged when it was queued (work done: never refused)."""
    from backplane.billing.usage import UsageRecorder

    rails = internals(kernel)
    extra = max(time.monotonic() - started - 1.0, 0.0)
    if extra > 0:
        recorder = UsageRecorder(session, rails.meters, rails.events)
        item = UsageItem("inference.training_seconds", extra, None, None, None)
        await recorder.record_many([item], enforce_limits=False)


async def _promote(
    kernel: Kernel, session: AsyncSession, model: str, version: str, card: dict[str, Any]
) -> PromotionDecision:
    """Move ``production`` to the new version if its holdout metric beats that of the version
    production points at by more than ``training.promotion_margin`` (that version's own
    training card says; an uploaded version has none, so it is never replaced)."""
    assert kernel.tenant_id is not None
    rails = internals(kernel)
    try:
        current = await get_alias(session, kernel.tenant_id, model, PRODUCTION)
    except RegistryError:
        production: dict[str, float] | None = None  # no production yet
    else:
        trained = await session.scalar(
            select(TrainingRun.card).where(
                TrainingRun.tenant_id == kernel.tenant_id,
                TrainingRun.model == model,
                TrainingRun.version == current.version,
                TrainingRun.status == SUCCEEDED,
            )
        )
        production = dict((trained or {}).get("metrics") or {})
    return await promote_if_better(
        session,
        rails.models,
        kernel.tenant_id,
        model,
        version,
        card["metrics"],
        production,
        metric=card["metric"],
        higher_is_better=card["higher_is_better"],
        margin=rails.settings.training.promotion_margin,
    )


def _gated(trainer: Any, card: dict[str, Any]) -> bool:
    """Whether the version must beat its baseline before ``production`` may move: always when
    the trainer gave its own (``baseline_source: "trainer"``, e.g. a rules score), and for the
    constant baseline when the trainer asks with ``beat_baseline_to_promote``."""
    return bool(trainer.beat_baseline_to_promote or card.get("baseline_source") == "trainer")


def _short_of_baseline(card: dict[str, Any]) -> PromotionDecision | None:
    """A refusal when the version's holdout metric does not beat its baseline's (the trainer's
    own, or the constant class prior or mean fitted on the same split); None when it does."""
    metric = card["metric"]
    score, baseline = card["metrics"].get(metric), card["baseline"].get(metric)
    if score is None or baseline is None:
        return PromotionDecision(promote=False, reason=f"no {metric!r} to compare with")
    better = score > baseline if card["higher_is_better"] else score < baseline
    if better:
        return None
    return PromotionDecision(
        promote=False, reason=f"{metric} {score:g} does not beat the baseline's {baseline:g}"
    )


def _card(trainer: Any, verdict: dict[str, Any]) -> dict[str, Any]:
    return {
        "trainer": trainer.name,
        "metric": trainer.metric,
        "higher_is_better": trainer.higher_is_better,
        "metrics": verdict["metrics"],
        "baseline": verdict["baseline"],
        "baseline_source": verdict.get("baseline_source", "constant"),
        "training_rows": verdict["training_rows"],
        "holdout_rows": verdict["holdout_rows"],
        "features": verdict["features"],
        "onnx_max_abs_diff": verdict["onnx_max_abs_diff"],
        "estimator": verdict["estimator"],
        "parameters": verdict["parameters"],
        "feature_means": verdict.get("feature_means"),
        "feature_importance": verdict.get("feature_importance"),
        "classes": verdict.get("classes"),
    }
