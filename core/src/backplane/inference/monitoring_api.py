"""``GET /api/models/{name}/monitoring``: each version's requests, error rate, latency
percentiles and input drift, for the caller's tenant. Another tenant's model answers 404, like
a missing one (the catalog resolves names for the caller's tenant only)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.identity.auth import Principal, requires
from backplane.inference.models import ModelVersion
from backplane.inference.monitoring import ModelMonitoring
from backplane.state import rails_of

MONITORING_SCOPE = (
    "What the server process that answers saw of the caller's tenant's requests since it "
    "started (kept in memory, like `/v2/models/{name}/stats`; with several processes each "
    "reports its own share). Latency percentiles are over each version's last 1024 successful "
    "requests. Drift: `inference.drift_sample_rate` of the requests to a trained version are "
    "sampled into a window of `inference.drift_window_rows` rows; each feature's population "
    "stability index against the training data is recomputed every "
    "`inference.drift_check_rows` new rows once the window holds `inference.drift_min_rows`; "
    "above `inference.drift_psi_threshold` (0.2) the version gets a `model.drift_detected` "
    "event and audit row, at most once per `inference.drift_cooldown_s`. `alerted_at` is the "
    "last alert of any process. Across processes: the OpenTelemetry metrics "
    "`backplane.inference.request_duration`, `backplane.inference.requests` and "
    "`backplane.inference.drift_psi`, labelled by model and version."
)


class MonitoringController(Controller):
    path = "/models"
    tags = ["models"]

    @get(
        "/{name:str}/monitoring",
        guards=[requires("models.read")],
        summary="Per-version requests, error rate, latency percentiles and input drift",
        description=MONITORING_SCOPE,
    )
    async def monitoring(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[AsyncSession],
        name: FromPath[str],
    ) -> ModelMonitoring:
        catalog = rails_of(request).models
        tenant = request.user.tenant_id
        versions = [r.version for r in await catalog.versions(db, tenant, name)]  # 404
        report = catalog.monitoring.read(tenant, name, versions)
        found = await db.execute(
            select(ModelVersion.version, ModelVersion.drift_alerted_at).where(
                ModelVersion.tenant_id == tenant,
                ModelVersion.name == name,
                ModelVersion.drift_alerted_at.is_not(None),
            )
        )
        alerted = {version: when for version, when in found.tuples()}
        for item in report:
            when = alerted.get(item.version)
            if when is not None:
                item.drift.alerted_at = when.isoformat()
        return ModelMonitoring(model=name, scope=MONITORING_SCOPE, versions=report)
