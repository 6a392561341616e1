"""Both learnt models through tritonclient (the V2 protocol) against ``backplane serve`` on the
test's PostgreSQL database: the trainers' own rows, split as the kernel splits them, give on
the served ``production`` versions the held-out figures the model cards recorded (hit rate@5
at least 1.5x popularity's, AUC above 0.75), and the route answers what tritonclient does."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from education_helpers import API, member, ok
from recommendation_helpers import Client, environ, in_tenant, school_of, served, train, wait_ready
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from backplane.testing import SeededTenant
from backplane_education.recommendations.features import enrolments, history_vector
from backplane_education.recommendations.school import record_completions
from backplane_education.recommendations.trainers import (
    AT_RISK_MODEL,
    NEXT_COURSE_MODEL,
    at_risk_data,
    next_course_data,
)

pytestmark = pytest.mark.slow  # a real `backplane serve` process and two fits


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """PostgreSQL only: the server and the test write the same database at once."""
    return environ(request, tmp_path)


def call(address: str, tenant: SeededTenant, model: str, rows: Any) -> Any:
    client = triton.InferenceServerClient(url=address)
    tensor = triton.InferInput("X", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(np.asarray(rows, np.float32))
    result = client.infer(model, [tensor], model_version="production", headers=tenant.headers)
    return result.as_numpy("probabilities")


def hit_rate_at_5(labels: Any, probabilities: Any, classes: list[str]) -> float:
    """The share of rows whose label is among the 5 most probable courses (ties count
    against, a course the model never saw is a miss), as the kernel measures it."""
    hits = 0
    for row, label in zip(probabilities, labels, strict=True):
        if label in classes:
            hits += int(np.count_nonzero(row >= row[classes.index(label)])) - 1 < 5
    return hits / len(labels)


def holdout(data: tuple[Any, Any, Any]) -> tuple[Any, Any, Any, Any]:
    """The kernel's split (``training.holdout_fraction`` 0.2, ``training.seed`` 0)."""
    features, labels, _ = data
    return train_test_split(np.asarray(features, np.float32), labels, test_size=0.2, random_state=0)


def test_both_models_answer_tritonclient_with_their_held_out_figures(
    backplane_client: Client,
    backplane_tenant: SeededTenant,
    backplane_environ: dict[str, str],
    tmp_path: Path,
) -> None:
    client, tenant = backplane_client, backplane_tenant
    school = school_of(client, tenant, seed=7, learners=200)
    log = tmp_path / "serve.log"
    with served(backplane_environ, log) as address:  # starts while the models train
        next_course = train(client, NEXT_COURSE_MODEL)
        at_risk = train(client, AT_RISK_MODEL)
        assert next_course["status"] == at_risk["status"] == "succeeded", (next_course, at_risk)
        wait_ready(address, log)

        _, x_hold, y_fit, y_hold = holdout(in_tenant(client, tenant, next_course_data))
        classes = next_course["card"]["classes"]
        hits = hit_rate_at_5(y_hold, call(address, tenant, NEXT_COURSE_MODEL, x_hold), classes)
        top = [course for course, _ in Counter(y_fit.tolist()).most_common(5)]
        popular = float(np.mean([label in top for label in y_hold]))
        print(f"tritonclient: hit_rate@5 {hits:.3f}, popularity {popular:.3f}")
        assert hits == pytest.approx(next_course["card"]["metrics"]["hit_rate@5"], abs=1e-9)
        assert hits >= 1.5 * popular > 0

        _, x_hold, _, y_hold = holdout(in_tenant(client, tenant, at_risk_data))
        risky = call(address, tenant, AT_RISK_MODEL, x_hold)[:, 1]
        auc = float(roc_auc_score(y_hold, risky))
        print(f"tritonclient: at-risk auc {auc:.3f}")
        assert auc == pytest.approx(at_risk["card"]["metrics"]["auc"], abs=1e-6)
        assert auc > 0.75

        # the route and tritonclient score a learner alike
        learner = member(client, tenant, "grace")
        track = school.tracks[2]

        user = uuid.UUID(learner["user_id"])

        async def give(kernel: Any) -> None:
            await record_completions(kernel, user, track[:1])

        async def history(kernel: Any) -> Any:
            return history_vector(await enrolments(kernel, user))

        in_tenant(client, tenant, give)
        row = in_tenant(client, tenant, history)
        direct = call(address, tenant, NEXT_COURSE_MODEL, row[None, :])[0]
        found = ok(client.get(f"{API}/recommendations", headers=learner["headers"]))
        assert found[0]["course_id"] == str(track[1]), found
        for item in found:
            expected = direct[classes.index(item["course_id"])]
            assert item["score"] == pytest.approx(float(expected), abs=1e-5)
