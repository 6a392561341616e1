"""Per-request explanations of tabular models: ``parameters: {"explain": true}`` in V2.

The method is occlusion against a baseline, run on the ONNX model itself (any runtime, any
model family skl2onnx converts, no gradients or model internals needed). For each row ``x``
of the request and each feature ``j``::

    contribution[x, j] = f(x) - f(x with feature j replaced by baseline[j])

computed in one ``session.run`` of ``rows * (features + 1)`` rows (each row, then the row with
each feature in turn set to its baseline). For a linear model it is exactly
``w_j * (x_j - baseline_j)`` in the model's output space; for others it is the effect of
removing one feature at a time (interactions between features are not split among them).

The baseline is the ``explain_baseline`` request parameter (one number for every feature)
when given, else the feature means the training run recorded on the version's model card,
else zero; the response's ``parameters`` say which (``explain_baseline``). Each floating-point
output ``O`` of shape ``[rows, *rest]`` gains an output ``O.contributions`` (FP32, shape
``[rows, features, *rest]``); non-float outputs (class labels) have none. The expanded batch
is what runs and what is metered (``inference.rows`` counts ``rows * (features + 1)``), and it
may not exceed ``inference.explain_max_rows``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
from sqlalchemy import select

from backplane.db.tenancy import bind_tenant
from backplane.inference import v2
from backplane.inference.training_runs import SUCCEEDED, TrainingRun

EXPLAIN = "explain"
BASELINE = "explain_baseline"
SUFFIX = ".contributions"
METHOD = "occlusion"


def wants_explanation(request: v2.InferRequest) -> bool:
    """Whether the request asks for explanations (``parameters.explain``, a boolean)."""
    params = request.parameters or {}
    value = params.get(EXPLAIN, False)
    if not isinstance(value, bool):
        raise v2.V2Error(f"parameter {EXPLAIN!r} must be a boolean")
    return value


def baseline_parameter(request: v2.InferRequest) -> float | None:
    params = request.parameters or {}
    if BASELINE not in params:
        return None
    value = params[BASELINE]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise v2.V2Error(f"parameter {BASELINE!r} must be a finite number")
    return float(value)


class Explanation:
    """One request's occlusion batch, and how to read contributions back out of its run."""

    def __init__(self, name: str, rows: Any, baseline: Any, source: str) -> None:
        self.name = name
        self.rows, self.features = rows.shape
        self.source = source
        repeated = np.repeat(rows[:, None, :], self.features + 1, axis=1)
        index = np.arange(self.features)
        repeated[:, index + 1, index] = baseline.astype(rows.dtype)
        self.feed = {name: repeated.reshape(-1, self.features)}

    @property
    def parameters(self) -> dict[str, v2.ParamValue]:
        return {"explain_method": METHOD, BASELINE: self.source}

    def split(self, outputs: Mapping[str, v2.Tensor]) -> dict[str, v2.Tensor]:
        """The request's own outputs, then ``O.contributions`` for each float output ``O``."""
        width = self.features + 1
        answer: dict[str, v2.Tensor] = {}
        contributions: dict[str, v2.Tensor] = {}
        for key, value in outputs.items():
            array = np.asarray(value)
            if array.ndim == 0 or array.shape[0] != self.rows * width:
                raise v2.V2Error(
                    f"output {key!r} does not have one row per input row: this model cannot be "
                    "explained by occlusion"
                )
            grouped = array.reshape(self.rows, width, *array.shape[1:])
            answer[key] = grouped[:, 0]
            if array.dtype.kind == "f":
                full, occluded = grouped[:, :1], grouped[:, 1:]
                contributions[key + SUFFIX] = (full - occluded).astype(np.float32)
        return answer | contributions

    @staticmethod
    def requested(
        outputs: list[v2.RequestOutput] | None, answer: Mapping[str, v2.Tensor]
    ) -> list[v2.RequestOutput] | None:
        """The request's ``outputs`` followed by the contributions of those that have them
        (with the same binary choice); None (every output) stays None."""
        if outputs is None:
            return None
        extra = [
            v2.RequestOutput(name=o.name + SUFFIX, parameters=o.parameters)
            for o in outputs
            if o.name + SUFFIX in answer
        ]
        return [*outputs, *extra]


def tabular_rows(feed: Mapping[str, Any]) -> tuple[str, Any]:
    """The one 2-D numeric input of a tabular model, or 400 saying why it is not one."""
    if len(feed) != 1:
        raise v2.V2Error(
            f"explanations need a tabular model (one 2-D input); this one takes {len(feed)} inputs"
        )
    ((name, rows),) = feed.items()
    if not isinstance(rows, np.ndarray) or rows.ndim != 2 or rows.dtype.kind not in "iuf":
        shape = list(getattr(rows, "shape", []))
        raise v2.V2Error(
            f"explanations need a tabular model (one 2-D numeric input); input {name!r} has "
            f"shape {shape}"
        )
    return name, rows


async def plan(
    database: Any,
    tenant_id: uuid.UUID,
    model: str,
    version: str,
    request: v2.InferRequest,
    feed: Mapping[str, Any],
    max_rows: int,
) -> Explanation:
    """The occlusion batch for ``feed`` (400 when it is not tabular or is too large)."""
    name, rows = tabular_rows(feed)
    if any(o.name.endswith(SUFFIX) for o in request.outputs or []):
        raise v2.V2Error(f"outputs named '*{SUFFIX}' are added by explain; do not request them")
    expanded = rows.shape[0] * (rows.shape[1] + 1)
    if expanded > max_rows:
        raise v2.V2Error(
            f"explaining {rows.shape[0]} rows of {rows.shape[1]} features runs {expanded} rows, "
            f"more than inference.explain_max_rows ({max_rows}): send fewer rows"
        )
    chosen = baseline_parameter(request)
    if chosen is not None:
        return Explanation(name, rows, np.full(rows.shape[1], chosen), "parameter")
    means = await training_means(database, tenant_id, model, version)
    if means is not None and len(means) == rows.shape[1]:
        return Explanation(name, rows, np.asarray(means, np.float64), "training_means")
    return Explanation(name, rows, np.zeros(rows.shape[1]), "zero")


async def training_means(
    database: Any, tenant_id: uuid.UUID, model: str, version: str
) -> list[float] | None:
    """The feature means of the training run that registered ``model``/``version`` (None for
    uploads and shipped models)."""
    async with database.sessions() as session:
        bind_tenant(session, tenant_id)
        card = await session.scalar(
            select(TrainingRun.card).where(
                TrainingRun.tenant_id == tenant_id,
                TrainingRun.model == model,
                TrainingRun.version == version,
                TrainingRun.status == SUCCEEDED,
            )
        )
    means = (card or {}).get("feature_means")
    return [float(m) for m in means] if isinstance(means, list) else None
