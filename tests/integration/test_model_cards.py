"""``GET /api/models/{name}`` shows each trained version's model card, from the run that
registered it; uploads have none; another tenant gets 404 (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from backplane.app import create_app
from backplane.inference.training_runs import TrainingRun
from backplane.kernel import Rails
from backplane.loading import load_plugins
from backplane.models import resource
from backplane.testing import SeededTenant
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import seed_tenant

IRIS = resource("iris_classifier.onnx").read_bytes()

CARD: dict[str, Any] = {
    "trainer": "kitchen_sink.notes",
    "metric": "auc",
    "higher_is_better": True,
    "metrics": {"auc": 0.93},
    "baseline": {"auc": 0.5},
    "training_rows": 320,
    "holdout_rows": 80,
    "features": 4,
    "onnx_max_abs_diff": 2e-7,
    "estimator": "Pipeline",
    "parameters": {"logisticregression__C": "1.0"},
    "feature_importance": [{"feature": 1, "importance": 0.3, "std": 0.01}],
    "promotion": {"promoted": True, "why": "no production version yet"},
}


@pytest.fixture
def stack(
    data_dir: Path, db_env: dict[str, str]
) -> Iterator[tuple[TestClient[Any], SeededTenant, SeededTenant, Rails]]:
    env = {"BACKPLANE_PLUGINS": "kitchen_sink", **db_env}
    plugins = load_plugins(make_settings(data_dir, env))
    migrate(plugins)
    acme, beta = seed_tenant(plugins, "acme"), seed_tenant(plugins, "beta")
    with TestClient(create_app(plugins.settings, plugins=plugins)) as client:
        yield client, acme, beta, Rails.build(plugins.settings, plugins)


def add_runs(rails: Rails, tenant: SeededTenant, runs: list[TrainingRun]) -> None:
    async def add() -> None:
        try:
            async with rails.kernel().tenant(tenant.tenant_id) as kernel:
                kernel.db.add_all(runs)
        finally:
            await rails.close()

    asyncio.run(add())


def test_a_trained_version_shows_its_card_and_an_upload_none(
    stack: tuple[TestClient[Any], SeededTenant, SeededTenant, Rails],
) -> None:
    client, acme, beta, rails = stack
    files = {"file": ("m.onnx", IRIS, "application/octet-stream")}
    for _ in range(3):
        made = client.post(
            "/api/models", files=files, data={"name": "scorer"}, headers=acme.headers
        )
        assert made.status_code == 201, made.text
    finished = datetime(2026, 12, 1, 3, 0, 5, tzinfo=UTC)
    runs = [
        TrainingRun(
            model="scorer",
            trainer="kitchen_sink.notes",
            status="succeeded",
            version="2",
            card=CARD,
            finished_at=finished,
        ),
        # a failed run names no version; one of another model with version 3 is not scorer's
        TrainingRun(model="scorer", trainer="kitchen_sink.notes", status="failed", error="x"),
        TrainingRun(
            model="other", trainer="kitchen_sink.notes", status="succeeded", version="3", card=CARD
        ),
    ]
    add_runs(rails, acme, runs)

    shown = client.get("/api/models/scorer", headers=acme.headers)
    assert shown.status_code == 200, shown.text
    versions = {v["version"]: v for v in shown.json()}
    assert versions["1"]["card"] is None
    assert versions["3"]["card"] is None
    card = versions["2"]["card"]
    assert card["run_id"] == str(runs[0].id)
    assert (card["metric"], card["holdout_metric"], card["baseline_metric"]) == ("auc", 0.93, 0.5)
    assert (card["training_rows"], card["holdout_rows"], card["features"]) == (320, 80, 4)
    assert card["trainer"] == "kitchen_sink.notes"
    assert card["parameters"] == {"logisticregression__C": "1.0"}
    assert card["feature_importance"] == [{"feature": 1, "importance": 0.3, "std": 0.01}]
    assert (card["promoted"], card["promotion_reason"]) == (True, "no production version yet")
    assert datetime.fromisoformat(card["trained_at"]) == finished

    # tenant beta: the same 404 as a model that does not exist, card or not
    assert client.get("/api/models/scorer", headers=beta.headers).status_code == 404
    assert client.get("/api/models/nothing", headers=beta.headers).status_code == 404
