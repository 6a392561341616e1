"""Training by hook, end to end: kitchen_sink's trainer learns from a tenant's notes through
``POST /api/models/{name}/train`` on a real ``backplane serve``; the version it registers beats
a constant baseline on the holdout, answers tritonclient like scikit-learn, and is the tenant's
alone. Runs past the time or memory limit fail with a clear error and leave no version."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from bp_sample_kitchen_sink.trainers import note_row, synthetic
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tritonclient.utils import InferenceServerException

from backplane.loading import load_plugins
from tests.cli import run_cli, serving
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import TEST_PASSWORD_ENV, seed_tenant
from tests.live_helpers import open_stream

pytestmark = pytest.mark.slow  # a real `backplane serve` process, fit subprocesses

ROWS = 400
DONE = ("succeeded", "failed")


def wait_done(http: httpx.Client, model: str, run_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = http.get(f"/api/models/{model}/training-runs/{run_id}")
        assert run.status_code == 200, run.text
        if run.json()["status"] in DONE or time.monotonic() > deadline:
            return dict(run.json())
        time.sleep(0.3)


@pytest.fixture
def served_env() -> dict[str, str]:
    """The server's environment (filled by ``served``), for CLI commands on its database."""
    return {}


@pytest.fixture
def served(
    data_dir: Path, db_env: dict[str, str], served_env: dict[str, str]
) -> Iterator[tuple[str, httpx.Client, httpx.Client]]:
    """``backplane serve`` with kitchen_sink; clients of tenants ``acme`` and ``beta``."""
    env = served_env
    env |= {
        "BACKPLANE_DATA_DIR": str(data_dir),
        "BACKPLANE_PLUGINS": "kitchen_sink",
        "BACKPLANE_PLUGIN__KITCHEN_SINK__MAX_NOTES": "1000",
        # generous: the fit process imports scikit-learn, skl2onnx and onnxruntime on a busy CI
        "BACKPLANE_TRAINING__TIME_LIMIT_S": "30",
        "BACKPLANE_TRAINING__MEMORY_BYTES": str(1536 << 20),
        "BACKPLANE_TRAINING__MAX_CONCURRENT_PER_TENANT": "1",
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
        yield server.base.removeprefix("http://"), clients[0], clients[1]
        for http in clients:
            http.close()


def acme_rows(http: httpx.Client) -> tuple[np.ndarray, np.ndarray]:
    """Store ROWS labelled notes for the tenant; the rows as the trainer will read them."""
    features, labels = synthetic(ROWS, seed=11)
    bodies = [note_row(list(map(float, f)), int(y)) for f, y in zip(features, labels, strict=True)]
    for body in bodies:
        assert http.post("/api/kitchen_sink/notes", json={"body": body}).status_code == 201
    parsed = np.array([[float(v) for v in b.split("|")[0].split()] for b in bodies], np.float32)
    return parsed, labels


def test_a_trained_version_beats_the_baseline_and_answers_tritonclient_like_scikit_learn(
    served: tuple[str, httpx.Client, httpx.Client], served_env: dict[str, str]
) -> None:
    url, acme, beta = served
    features, labels = acme_rows(acme)
    with open_stream(f"http://{url}", dict(acme.headers)) as stream:
        started = acme.post("/api/models/note_score/train")
        assert started.status_code == 202, started.text
        assert started.json()["status"] == "queued"
        run = wait_done(acme, "note_score", started.json()["id"])
        progress = []  # the live events of the run, as the tenant's stream received them
        while not progress or progress[-1] not in DONE:
            event = stream.next_event()
            if event.event == "models.training":
                data = event.json["data"]
                assert data["run"] == run["id"]
                progress.append(data.get("status") or data["progress"])
    steps = ["fitting", "evaluating", "converting", "checking", "importance", "registering"]
    steps.append("succeeded")
    assert progress == steps
    assert run["status"] == "succeeded", run
    card = run["card"]
    assert card["trainer"] == "kitchen_sink.notes"
    assert (card["training_rows"], card["holdout_rows"]) == (ROWS * 4 // 5, ROWS // 5)
    assert card["metrics"]["auc"] > 0.9 > 0.6 > card["baseline"]["auc"]
    assert card["onnx_max_abs_diff"] <= 1e-4
    assert card["parameters"]["logisticregression__C"] == "1.0"
    listed = acme.get("/api/models/note_score/training-runs").json()
    assert [r["id"] for r in listed] == [run["id"]]

    # the same split and pipeline here give the probabilities the served version answers
    x_fit, x_hold, y_fit, _ = train_test_split(features, labels, test_size=0.2, random_state=0)
    local = make_pipeline(StandardScaler(), LogisticRegression()).fit(x_fit, y_fit)
    client = triton.InferenceServerClient(url=url)
    auth = dict(acme.headers)
    tensor = triton.InferInput("X", list(x_hold.shape), "FP32")
    tensor.set_data_from_numpy(x_hold)
    result = client.infer("note_score", [tensor], model_version=run["version"], headers=dict(auth))
    assert np.allclose(result.as_numpy("probabilities"), local.predict_proba(x_hold), atol=1e-4)
    assert np.array_equal(result.as_numpy("label"), local.predict(x_hold))
    # the first trained version became production, and tritonclient calls it by that alias
    assert card["promotion"] == {"promoted": True, "why": "no production version yet"}
    production = acme.get("/api/models/note_score/aliases/production").json()
    assert production["version"] == run["version"]
    by_alias = client.infer("note_score", [tensor], model_version="production", headers=auth)
    assert np.allclose(by_alias.as_numpy("probabilities"), result.as_numpy("probabilities"))

    # explanations through tritonclient: occlusion against the training means, whose signs
    # and sizes follow the synthetic weights (1.5, -2.0, 0.5, 0.0) on standardised features
    explained = client.infer(
        "note_score",
        [tensor],
        model_version="production",
        headers=auth,
        parameters={"explain": True},
    )
    assert explained.get_response()["parameters"]["explain_baseline"] == "training_means"
    np.testing.assert_allclose(
        explained.as_numpy("probabilities"), result.as_numpy("probabilities"), atol=1e-6
    )
    contributions = explained.as_numpy("probabilities.contributions")
    assert contributions.shape == (len(x_hold), 4, 2)
    positive = contributions[:, :, 1]
    above = x_hold - np.array(card["feature_means"], np.float32)  # where each row sits
    for feature, weight in ((0, 1.5), (1, -2.0), (2, 0.5)):
        agree = np.sign(positive[:, feature]) == np.sign(weight * above[:, feature])
        assert agree.mean() > 0.95, (feature, agree.mean())
    # the two heavy features matter most, the one with no weight least
    order = list(np.argsort(-np.abs(positive).mean(axis=0)))
    assert (set(order[:2]), order[3]) == ({0, 1}, 3)
    # the global view on the card: permutation importance on the holdout, the same ranking
    ranked = [item["feature"] for item in card["feature_importance"]]
    assert (set(ranked[:2]), ranked[3]) == ({0, 1}, 3), card["feature_importance"]
    assert (
        card["feature_importance"][3]["importance"]
        < 0.01
        < card["feature_importance"][1]["importance"]
    )
    shown = acme.get("/api/models/note_score").json()
    assert shown[0]["card"]["run_id"] == run["id"]
    assert shown[0]["card"]["holdout_metric"] == card["metrics"]["auc"]

    # tenant beta sees nothing of acme's model, and cannot call it
    assert beta.get(f"/api/models/note_score/training-runs/{run['id']}").status_code == 404
    assert beta.get("/api/models/note_score/training-runs").json() == []
    assert beta.get("/api/models/note_score").status_code == 404
    with pytest.raises(InferenceServerException, match=r"404|not found|unknown"):
        client.infer("note_score", [tensor], headers=dict(beta.headers))
    # training the same name for beta reads beta's (empty) notes: it fails, acme's untouched
    own = beta.post("/api/models/note_score/train")
    assert own.status_code == 202, own.text
    failed = wait_done(beta, "note_score", own.json()["id"])
    assert failed["status"] == "failed"
    assert "0 rows" in failed["error"]
    assert beta.get("/api/models/note_score").status_code == 404
    assert [v["version"] for v in acme.get("/api/models/note_score").json()] == [run["version"]]

    # the operator's command: the same run, followed to its end
    followed = run_cli(
        "models", "train", "note_score", "--tenant", "acme", "--wait", env=served_env
    )
    assert followed.returncode == 0, followed.stderr
    assert "note_score version 2 registered for acme: auc 0.9" in followed.stdout
    versions = [v["version"] for v in acme.get("/api/models/note_score").json()]
    assert versions == [run["version"], "2"]
    # the same data and seed give the same AUC: not better by more than the margin (0), so
    # production stays where it was
    second = acme.get("/api/models/note_score/training-runs").json()
    (rerun,) = [r for r in second if r["version"] == "2"]
    auc = card["metrics"]["auc"]
    assert rerun["card"]["promotion"] == {
        "promoted": False,
        "why": f"auc {auc:g} does not beat {auc:g} by more than 0",
    }
    still = acme.get("/api/models/note_score/aliases/production").json()
    assert still["version"] == run["version"]
    refused = run_cli("models", "train", "note_score", "--tenant", "beta", "--wait", env=served_env)
    assert refused.returncode == 1
    assert "failed: the trainer returned 0 rows" in refused.stderr


@pytest.mark.parametrize(
    ("model", "reason"),
    [("slow_score", "training.time_limit_s (30 s)"), ("hungry_score", "training.memory_bytes")],
)
def test_a_run_past_its_limit_fails_clearly_and_leaves_no_version(
    served: tuple[str, httpx.Client, httpx.Client], model: str, reason: str
) -> None:
    _url, acme, _beta = served
    started = acme.post(f"/api/models/{model}/train")
    assert started.status_code == 202, started.text
    began = time.monotonic()
    run = wait_done(acme, model, started.json()["id"], timeout=90)
    assert run["status"] == "failed", run
    assert reason in run["error"]
    assert run["version"] is None
    assert run["card"] is None
    assert time.monotonic() - began < 60  # the slow fit (600 s) was killed, not waited for
    assert acme.get(f"/api/models/{model}").status_code == 404


def test_bad_requests_are_refused_with_a_reason(
    served: tuple[str, httpx.Client, httpx.Client],
) -> None:
    _url, acme, _beta = served
    unknown = acme.post("/api/models/nobody_trains_this/train")
    assert unknown.status_code == 404
    assert "no trainer is registered" in unknown.json()["detail"]
    wrong = acme.post("/api/models/note_score/train", json={"trainer": "kitchen_sink.slow"})
    assert wrong.status_code == 404
    extra = acme.post("/api/models/note_score/train", json={"trainer": None, "epochs": 3})
    assert extra.status_code == 400
    assert acme.get("/api/models/note_score/training-runs/not-a-uuid").status_code == 404
    # a model nothing trains and nobody trained has no runs to list: 404, as for another
    # tenant's model; a trainable one lists its (none yet) runs
    nothing = acme.get("/api/models/nobody_trains_this/training-runs")
    assert nothing.status_code == 404
    assert "no trainer or training run" in nothing.json()["detail"]
    assert acme.get("/api/models/note_score/training-runs").json() == []
    # a tenant that turned the trainer's plugin off cannot run its trainers
    assert acme.put("/api/tenant/plugins/kitchen_sink", json={"enabled": False}).status_code == 200
    off = acme.post("/api/models/note_score/train")
    assert off.status_code == 404
    assert "turned off" in off.json()["detail"]


def test_concurrent_requests_never_pass_the_cap_on_active_runs(
    served: tuple[str, httpx.Client, httpx.Client],
) -> None:
    """``training.max_concurrent_per_tenant`` is 1 here: of four requests at once, one run."""
    from concurrent.futures import ThreadPoolExecutor

    _url, acme, beta = served
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: acme.post("/api/models/slow_score/train"), range(4)))
    assert sorted(a.status_code for a in answers) == [202, 429, 429, 429]
    refused = next(a for a in answers if a.status_code == 429)
    assert "training.max_concurrent_per_tenant" in refused.json()["detail"]
    assert beta.post("/api/models/slow_score/train").status_code == 202  # its own cap
    assert len(acme.get("/api/models/slow_score/training-runs").json()) == 1


def test_training_past_the_quota_is_refused(
    served: tuple[str, httpx.Client, httpx.Client], served_env: dict[str, str]
) -> None:
    _url, acme, _beta = served
    capped = run_cli("quotas", "set", "acme", "inference.training_seconds", "0", env=served_env)
    assert capped.returncode == 0, capped.stderr
    refused = acme.post("/api/models/note_score/train")
    assert refused.status_code == 429, refused.text
    assert acme.get("/api/models/note_score/training-runs").json() == []


def test_a_run_whose_worker_died_fails_when_its_task_comes_again(
    data_dir: Path, db_env: dict[str, str]
) -> None:
    """A worker killed mid-run leaves the run ``running``; the outbox delivers the task again,
    which fails the run (so it does not hold the tenant's cap forever) and starts nothing."""
    import asyncio

    from backplane.inference.training import train_model
    from backplane.inference.training_runs import TrainingRun
    from backplane.kernel import Rails

    plugins = load_plugins(make_settings(data_dir, db_env))
    migrate(plugins)
    acme = seed_tenant(plugins, "acme")

    async def scenario() -> TrainingRun:
        rails = Rails.build(plugins.settings, plugins)
        try:
            async with rails.kernel().tenant(acme.tenant_id) as kernel:
                row = TrainingRun(
                    model="note_score", trainer="kitchen_sink.notes", status="running"
                )
                kernel.db.add(row)
            async with rails.kernel().tenant(acme.tenant_id) as kernel:
                await train_model(kernel, str(row.id))
            async with rails.kernel().tenant(acme.tenant_id) as kernel:
                found = await kernel.db.get(TrainingRun, row.id)
                assert found is not None
                return found
        finally:
            await rails.close()

    run = asyncio.run(scenario())
    assert run.status == "failed"
    assert run.error == "interrupted: the worker running it stopped; start a new run"
    assert run.version is None
