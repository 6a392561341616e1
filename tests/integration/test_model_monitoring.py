"""``GET /api/models/{name}/monitoring`` and drift alerts, in process: per-version counts and
latency percentiles of the caller's tenant only (another tenant's model is 404), and a version
with a training profile that raises one ``model.drift_detected`` per crossing, none for inputs
like its training data. The profile is written here as training writes it (the real training
path is ``test_drift.py``); sampling at 1, every other drift setting at its default."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import update

from backplane._contract import ModelRef
from backplane.app import create_app
from backplane.inference.drift import feature_profile
from backplane.inference.models import ModelVersion
from backplane.inference.monitoring import Monitoring
from backplane.loading import load_plugins
from backplane.models import resource
from backplane.settings import InferenceSettings, Settings
from backplane.testing import SeededTenant
from tests.audit_helpers import trail
from tests.conftest import make_settings
from tests.db_helpers import admin_session, migrate
from tests.identity_helpers import seed_tenant
from tests.waiting import wait_for

IRIS = resource("iris_classifier.onnx").read_bytes()
MEANS = np.array([5.8, 3.0, 3.7, 1.2])
SPREADS = np.array([0.8, 0.4, 1.7, 0.7])


def rows(count: int, seed: int, shift: float = 0.0) -> np.ndarray[Any, Any]:
    """Iris-like rows; ``shift`` moves the third feature by that many standard deviations."""
    data = np.random.default_rng(seed).normal(MEANS, SPREADS, size=(count, 4))
    data[:, 2] += shift * SPREADS[2]
    return data.astype(np.float32)


def infer_body(block: np.ndarray[Any, Any]) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "float_input",
                "shape": list(block.shape),
                "datatype": "FP32",
                "data": block.ravel().tolist(),
            }
        ]
    }


class Setup:
    def __init__(self, client: TestClient[Litestar], settings: Settings, a: SeededTenant,
                 b: SeededTenant) -> None:  # fmt: skip
        self.client, self.settings, self.a, self.b = client, settings, a, b

    def monitoring(self, who: SeededTenant, name: str = "scorer") -> Any:
        return self.client.get(f"/api/models/{name}/monitoring", headers=who.headers)

    def drift(self, version: str = "1") -> dict[str, Any]:
        found = self.monitoring(self.a).json()["versions"]
        return dict(next(v["drift"] for v in found if v["version"] == version))

    def send(self, data: np.ndarray[Any, Any], batch: int = 50) -> None:
        for start in range(0, len(data), batch):
            answer = self.client.post(
                "/v2/models/scorer/infer",
                json=infer_body(data[start : start + batch]),
                headers=self.a.headers,
            )
            assert answer.status_code == 200, answer.text

    def alerts(self) -> list[Any]:
        return trail(self.settings, self.a.tenant_id, "model.drift_detected")


@pytest.fixture
def setup(data_dir: Path) -> Iterator[Setup]:
    settings = make_settings(data_dir, {"BACKPLANE_INFERENCE__DRIFT_SAMPLE_RATE": "1"})
    plugins = load_plugins(settings)
    migrate(plugins)
    a, b = seed_tenant(plugins, "acme"), seed_tenant(plugins, "globex")
    with TestClient(create_app(settings, plugins=plugins)) as client:
        files = {"file": ("m.onnx", IRIS, "application/octet-stream")}
        made = client.post("/api/models", files=files, data={"name": "scorer"}, headers=a.headers)
        assert made.status_code == 201, made.text
        yield Setup(client, settings, a, b)


def give_profile(settings: Settings, tenant: uuid.UUID, profile: dict[str, Any]) -> None:
    """What a training run records on the version it registers."""

    async def write() -> None:
        async with admin_session(settings) as session:
            await session.execute(
                update(ModelVersion)
                .where(ModelVersion.tenant_id == tenant, ModelVersion.name == "scorer")
                .values(feature_profile=profile)
            )
            await session.commit()

    asyncio.run(write())


def test_monitoring_counts_each_tenants_requests_per_version_and_hides_others_models(
    setup: Setup,
) -> None:
    setup.send(rows(120, seed=1), batch=10)  # 12 requests
    body = setup.monitoring(setup.a).json()
    assert body["model"] == "scorer"
    assert "server process" in body["scope"]
    (version,) = body["versions"]
    assert (version["version"], version["requests"], version["successes"]) == ("1", 12, 12)
    assert (version["failures"], version["error_rate"]) == (0, 0.0)
    latency = version["latency"]
    assert latency["window"] == 12
    assert 0 < latency["p50_ms"] <= latency["p90_ms"] <= latency["p99_ms"]
    assert version["last_request_at"] is not None
    # an upload has no training profile: sampled, but nothing to compare with
    assert version["drift"]["status"] == "no reference"
    assert version["drift"]["sample_rate"] == 1.0
    assert version["drift"]["threshold"] == 0.2

    # tenant B: A's model does not exist for it, exactly like a missing one
    hidden = setup.monitoring(setup.b)
    missing = setup.monitoring(setup.b, "no_such_model")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"] == "unknown model 'scorer'"
    # a shipped model both can call: each sees only its own traffic
    shipped = setup.client.post(
        "/v2/models/iris_classifier/infer", json=infer_body(rows(1, 2)), headers=setup.a.headers
    )
    assert shipped.status_code == 200, shipped.text
    mine = setup.monitoring(setup.a, "iris_classifier").json()["versions"]
    theirs = setup.monitoring(setup.b, "iris_classifier").json()["versions"]
    assert [v["requests"] for v in mine] == [1]
    assert [v["requests"] for v in theirs] == [0]
    assert theirs[0]["latency"] == {"window": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None}
    assert setup.client.get("/api/models/scorer/monitoring").status_code == 401


def test_the_route_is_documented_with_the_model_routes(setup: Setup) -> None:
    paths = setup.client.get("/schema/openapi.json").json()["paths"]
    operation = paths["/api/models/{name}/monitoring"]["get"]
    assert operation["tags"] == ["models"]
    for said in ("inference.drift_sample_rate", "inference.drift_psi_threshold", "0.2"):
        assert said in operation["description"]


def test_failures_count_in_the_error_rate() -> None:
    book = Monitoring(InferenceSettings())
    tenant = uuid.uuid4()
    ref = ModelRef(name="m", version="1", source="upload", key="0" * 64)
    for elapsed in (1_000_000, 2_000_000, 3_000_000):
        book.success(tenant, "m", "1", elapsed, ref, {})
    book.failure(tenant, "m", "1", 9_000_000)
    (read,) = book.read(tenant, "m", ["1"])
    assert (read.requests, read.successes, read.failures, read.error_rate) == (4, 3, 1, 0.25)
    assert (read.latency.p50_ms, read.latency.window) == (2.0, 3)
    assert read.drift.status == "off"  # no events rail: this catalog watches no drift
    assert book.read(uuid.uuid4(), "m", ["1"])[0].requests == 0


def test_drift_alerts_once_for_shifted_inputs_and_never_for_training_like_ones(
    setup: Setup,
) -> None:
    give_profile(setup.settings, setup.a.tenant_id, feature_profile(rows(2000, seed=7)) or {})
    # like the training data: PSI computed (every 100 new rows from 500 on), never an alert
    setup.send(rows(1000, seed=8))
    drift = wait_for(
        lambda: (d := setup.drift())["computed_over_rows"] == 1000 and d,
        message="the PSI of the 1000 unshifted rows",
    )
    assert drift["status"] == "stable", drift
    assert drift["max_psi"] < 0.1
    assert set(drift["psi"]) == {f"float_input[{j}]" for j in range(4)}
    assert (drift["window_rows"], drift["sampled_rows"]) == (1000, 1000)
    assert drift["alerted_at"] is None
    assert setup.alerts() == []

    # the third feature moves by one standard deviation: one alert, then quiet while it stays
    setup.send(rows(2500, seed=9, shift=1.0))
    drift = wait_for(
        lambda: (d := setup.drift())["sampled_rows"] == 3500 and d,
        message="the shifted rows sampled",
    )
    wait_for(setup.alerts, message="the drift alert's audit row")
    drift = wait_for(
        lambda: (d := setup.drift())["alerted_at"] and d, message="the alert on the endpoint"
    )
    assert drift["status"] == "drifting"
    assert drift["psi"]["float_input[2]"] > 0.2
    setup.send(rows(500, seed=10, shift=1.0))
    wait_for(lambda: setup.drift()["sampled_rows"] == 4000, message="more shifted rows sampled")
    (row,) = setup.alerts()
    assert (row.actor_kind, row.target_type, row.target_id) == ("system", "model", "scorer/1")
    details = row.details
    assert (details["model"], details["version"], details["threshold"]) == ("scorer", "1", 0.2)
    assert details["window_rows"] == 2000
    assert list(details["psi"]) == ["float_input[2]"]
    assert details["drifted_features"] == 1
    # B's own model of the same name never saw A's traffic or alert
    assert trail(setup.settings, setup.b.tenant_id, "model.drift_detected") == []


_READER: list[Any] = []


def metric_reader() -> Any:
    """An in-memory OpenTelemetry metric reader on the global meter provider (once per
    process: the kernel's instruments are proxies until a provider is set)."""
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    if not _READER:
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        _READER.append(reader)
    return _READER[0]


def test_opentelemetry_carries_model_and_version_never_the_tenant(setup: Setup) -> None:
    reader = metric_reader()
    give_profile(setup.settings, setup.a.tenant_id, feature_profile(rows(2000, seed=7)) or {})
    setup.send(rows(1000, seed=11, shift=1.0), batch=100)  # 10 requests
    wait_for(setup.alerts, message="the drift alert")
    points: dict[str, list[Any]] = {}
    for exported in reader.get_metrics_data().resource_metrics:
        for scope in exported.scope_metrics:
            for metric in scope.metrics:
                if metric.name.startswith("backplane.inference."):
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
    for name, found in points.items():
        for point in found:
            assert "tenant" not in point.attributes, name
            assert str(setup.a.tenant_id) not in map(str, point.attributes.values()), name
    mine = {"model": "scorer", "version": "1"}
    durations = [
        p for p in points["backplane.inference.request_duration"]
        if dict(p.attributes) == {**mine, "outcome": "success"}
    ]  # fmt: skip
    assert sum(p.count for p in durations) >= 10
    (psi,) = [p for p in points["backplane.inference.drift_psi"] if dict(p.attributes) == mine]
    assert psi.value > 0.2
    (alerts,) = [
        p for p in points["backplane.inference.drift_alerts"] if dict(p.attributes) == mine
    ]
    assert alerts.value >= 1
