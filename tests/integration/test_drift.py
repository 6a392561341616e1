"""Issue 20, acceptance 3: drift against the training data, through the real training path.

kitchen_sink's trainer learns from a tenant's notes on a real ``backplane serve``; the version
it registers carries its training rows' feature profile. Requests like the training data are
sampled (``inference.drift_sample_rate`` raised to 1 for the test; every other drift setting,
the 0.2 PSI threshold included, at its documented default) and raise nothing; shifted ones
raise one ``model.drift_detected`` tenant event on the live stream and one audit row. Fixed
seeds throughout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from bp_sample_kitchen_sink.trainers import note_row, synthetic

from backplane.loading import load_plugins
from tests.cli import serving
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import TEST_PASSWORD_ENV, seed_tenant
from tests.live_helpers import open_stream
from tests.waiting import wait_for

pytestmark = pytest.mark.slow  # a real `backplane serve` process, a fit subprocess

TRAINING_ROWS = 400
BATCH = 50


@pytest.fixture
def served(
    data_dir: Path, db_env: dict[str, str]
) -> Iterator[tuple[str, httpx.Client, httpx.Client]]:
    env = {
        "BACKPLANE_DATA_DIR": str(data_dir),
        "BACKPLANE_PLUGINS": "kitchen_sink",
        "BACKPLANE_PLUGIN__KITCHEN_SINK__MAX_NOTES": "1000",
        "BACKPLANE_TRAINING__TIME_LIMIT_S": "60",
        "BACKPLANE_TRAINING__MEMORY_BYTES": str(1536 << 20),
        "BACKPLANE_INFERENCE__DRIFT_SAMPLE_RATE": "1",
        **TEST_PASSWORD_ENV,
        **db_env,
    }
    plugins = load_plugins(make_settings(data_dir, env))
    migrate(plugins)
    acme, beta = seed_tenant(plugins, "acme"), seed_tenant(plugins, "beta")
    with serving(env, data_dir.parent / "serve.log") as server:
        clients = [
            httpx.Client(base_url=server.base, headers=t.headers, timeout=30) for t in (acme, beta)
        ]
        for http in clients:
            enabled = http.put("/api/tenant/plugins/kitchen_sink", json={"enabled": True})
            assert enabled.status_code == 200, enabled.text
        yield server.base, clients[0], clients[1]
        for http in clients:
            http.close()


def train(http: httpx.Client) -> str:
    """Store the training notes, train through the API; the version registered."""
    features, labels = synthetic(TRAINING_ROWS, seed=11)
    for row, label in zip(features, labels, strict=True):
        body = note_row(list(map(float, row)), int(label))
        assert http.post("/api/kitchen_sink/notes", json={"body": body}).status_code == 201
    started = http.post("/api/models/note_score/train")
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]

    def finished() -> dict[str, Any] | None:
        run = http.get(f"/api/models/note_score/training-runs/{run_id}").json()
        return run if run["status"] in ("succeeded", "failed") else None

    run = wait_for(finished, message="the training run", timeout=120, interval=0.3)
    assert run["status"] == "succeeded", run
    return str(run["version"])


def send(http: httpx.Client, version: str, data: np.ndarray[Any, Any]) -> None:
    for start in range(0, len(data), BATCH):
        block = data[start : start + BATCH]
        body = {
            "inputs": [
                {"name": "X", "shape": list(block.shape), "datatype": "FP32",
                 "data": block.ravel().tolist()}
            ]
        }  # fmt: skip
        answer = http.post(f"/v2/models/note_score/versions/{version}/infer", json=body)
        assert answer.status_code == 200, answer.text


def drift_of(http: httpx.Client, version: str) -> dict[str, Any]:
    found = http.get("/api/models/note_score/monitoring")
    assert found.status_code == 200, found.text
    return dict(next(v["drift"] for v in found.json()["versions"] if v["version"] == version))


def audit_rows(http: httpx.Client) -> list[dict[str, Any]]:
    page = http.get("/api/audit", params={"action": "model.drift_detected"})
    assert page.status_code == 200, page.text
    return list(page.json()["items"])


def test_shifted_inputs_raise_the_drift_event_and_unshifted_ones_do_not(
    served: tuple[str, httpx.Client, httpx.Client],
) -> None:
    base, acme, beta = served
    version = train(acme)
    assert drift_of(acme, version)["status"] == "not sampled"

    # like the training data (same generator, another seed): PSI computed, nothing raised
    unshifted, _ = synthetic(1000, seed=12)
    send(acme, version, unshifted)
    drift = wait_for(
        lambda: (d := drift_of(acme, version))["computed_over_rows"] == 1000 and d,
        message="the PSI over the 1000 unshifted rows",
    )
    assert drift["status"] == "stable", drift
    assert drift["max_psi"] < drift["threshold"] == 0.2
    assert set(drift["psi"]) == {"X[0]", "X[1]", "X[2]", "X[3]"}
    assert audit_rows(acme) == []

    # the first feature moves by 1.5 standard deviations: the event (live) and one audit row
    shifted, _ = synthetic(2000, seed=13)
    shifted[:, 0] += 1.5
    with open_stream(base, dict(acme.headers)) as stream:
        send(acme, version, shifted)
        deadline = time.monotonic() + 30
        while True:
            event = stream.next_event()
            if event.event == "model.drift_detected":
                break
            assert time.monotonic() < deadline, "no model.drift_detected event"
    data = event.json["data"]
    assert (data["model"], data["version"], data["threshold"]) == ("note_score", version, 0.2)
    assert list(data["psi"]) == ["X[0]"]
    assert data["psi"]["X[0]"] > 0.2
    (row,) = wait_for(lambda: audit_rows(acme), message="the audit row")
    assert (row["target_type"], row["target_id"]) == ("model", f"note_score/{version}")
    assert row["actor_kind"] == "system"
    assert row["details"] == data
    drift = drift_of(acme, version)
    assert drift["status"] == "drifting"
    assert drift["alerted_at"] is not None

    # tenant B sees nothing of it: not the model's monitoring, not the audit row
    assert beta.get("/api/models/note_score/monitoring").status_code == 404
    assert audit_rows(beta) == []
