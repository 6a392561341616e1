"""Recommendations that learn, for real: a seeded synthetic school (tracks of courses taken in
order, noise, dropouts driven by quiz scores and early activity) in one tenant, both trainers
run through ``POST /api/models/{model}/train`` (the kernel's rails: seeded holdout, fit in a
subprocess, ONNX, baseline on the same split, promotion gate), then served by the plugin's
routes through ``kernel.models``: explained, metered, permission-checked and tenant-isolated."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from education_helpers import API, member, ok
from litestar import Litestar
from litestar.testing import TestClient

from backplane.testing import (
    CHEAP_PASSWORD_HASHING,
    SeededTenant,
    run_in_tenant,
    run_tasks,
    seed_tenant,
    usage_of,
)
from backplane_education.recommendations.school import (
    School,
    record_completions,
    seed_school,
)
from backplane_education.recommendations.trainers import AT_RISK_MODEL, NEXT_COURSE_MODEL

Client = TestClient[Litestar]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Both databases: on PostgreSQL row-level security keeps each trainer to its tenant."""
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "education",
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
        "BACKPLANE_TRAINING__TIME_LIMIT_S": "90",
        **CHEAP_PASSWORD_HASHING,
    }
    if request.param == "postgres":
        environ |= request.getfixturevalue("backplane_postgres_database")
    return environ


def train(client: Client, model: str) -> dict[str, Any]:
    started = client.post(f"/api/models/{model}/train")
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 120
    while True:  # the run's task hands the fit to a subprocess and follows it
        run_tasks(client, timeout=120)
        run = client.get(f"/api/models/{model}/training-runs/{started.json()['id']}")
        assert run.status_code == 200, run.text
        if run.json()["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return dict(run.json())
        time.sleep(0.2)


def school_of(client: Client, tenant: SeededTenant | str, seed: int, **shape: Any) -> School:
    async def work(kernel: Any) -> School:
        return await seed_school(kernel, seed=seed, **shape)

    return run_in_tenant(client, tenant, work, plugin="education")


def test_the_learnt_recommenders_beat_their_baselines_and_serve_the_tenant_alone(
    backplane_client: Client, backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    school = school_of(client, backplane_tenant, seed=1, learners=300)
    other = seed_tenant(client, "other-school")
    theirs = school_of(client, other, seed=2, learners=60, tracks=2)

    # before any training, the routes say what is missing
    refused = client.get(f"{API}/courses/{school.tracks[0][0]}/at-risk")
    assert refused.status_code == 409, refused.text
    assert f"/api/models/{AT_RISK_MODEL}/train" in refused.json()["detail"]

    run = train(client, NEXT_COURSE_MODEL)
    assert run["status"] == "succeeded", run
    card = run["card"]
    hit_rate, popularity = card["metrics"]["hit_rate@5"], card["baseline"]["hit_rate@5"]
    print(f"next course: hit_rate@5 {hit_rate:.3f}, popularity {popularity:.3f}")
    assert hit_rate >= 1.5 * popularity > 0, card
    assert card["promotion"]["promoted"] is True, card
    assert sorted(card["classes"]) == sorted(str(c) for t in school.tracks for c in t)
    # one row per enrolment of this tenant's school: the other tenant's never reach the trainer
    rows = card["training_rows"] + card["holdout_rows"]
    assert rows == enrolments_of(client, backplane_tenant), (rows, card)

    risk = train(client, AT_RISK_MODEL)
    assert risk["status"] == "succeeded", risk
    auc = risk["card"]["metrics"]["auc"]
    print(f"at risk: auc {auc:.3f}, baseline {risk['card']['baseline']['auc']:.3f}")
    assert auc > 0.75, risk["card"]
    assert risk["card"]["promotion"]["promoted"] is True

    recommendations_are_explained(client, backplane_tenant, school)
    at_risk_is_for_teachers(client, backplane_tenant, school)

    # the other tenant has no model of its own: ours never answers for it
    outsider = member(client, other, "outsider")
    async def give(kernel: Any) -> None:
        await record_completions(kernel, uuid.UUID(outsider["user_id"]), theirs.tracks[0][:1])

    run_in_tenant(client, other, give, plugin="education")
    blind = client.get(f"{API}/recommendations", headers=outsider["headers"])
    assert blind.status_code == 409, blind.text


def enrolments_of(client: Client, tenant: SeededTenant) -> int:
    from sqlalchemy import func, select

    from backplane_education.models import Enrolment

    async def work(kernel: Any) -> int:
        return int(await kernel.db.scalar(select(func.count()).select_from(Enrolment)))

    return run_in_tenant(client, tenant, work, plugin="education")


def recommendations_are_explained(client: Client, tenant: SeededTenant, school: School) -> None:
    learner = member(client, tenant, "ada")
    track = school.tracks[1]

    async def give(kernel: Any) -> None:
        await record_completions(kernel, uuid.UUID(learner["user_id"]), track[:2])

    run_in_tenant(client, tenant, give, plugin="education")
    before = usage_of(client, tenant, "inference.requests")
    found = ok(client.get(f"{API}/recommendations", headers=learner["headers"]))
    assert usage_of(client, tenant, "inference.requests") == before + 1  # metered, one call
    assert 1 <= len(found) <= 5
    ours = {str(c) for t in school.tracks for c in t}
    assert {r["course_id"] for r in found} <= ours - {str(c) for c in track[:2]}
    first = found[0]
    assert first["course_id"] == str(track[2]), found  # the track's next course
    assert first["because_completed"] in {str(c) for c in track[:2]}
    assert first["reason"] == f"because you completed {school.titles[uuid.UUID(first['because_completed'])]}"
    assert [r["score"] for r in found] == sorted((r["score"] for r in found), reverse=True)


def at_risk_is_for_teachers(client: Client, tenant: SeededTenant, school: School) -> None:
    course = school.tracks[0][0]
    listed = ok(client.get(f"{API}/courses/{course}/at-risk"))  # the owner manages every course
    assert listed, "the school has open enrolments in its most popular course"
    risks = [row["risk"] for row in listed]
    assert risks == sorted(risks, reverse=True)
    assert all(0.0 <= r <= 1.0 for r in risks)
    pupil = member(client, tenant, "pupil-of-none")  # teaches, but not this course
    refused = client.get(f"{API}/courses/{course}/at-risk", headers=pupil["headers"])
    assert refused.status_code == 403, refused.text
    missing = client.get(f"{API}/courses/{uuid.uuid4()}/at-risk")
    assert missing.status_code == 404, missing.text
