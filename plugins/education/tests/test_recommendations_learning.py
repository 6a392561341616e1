"""Recommendations that learn, for real: a seeded synthetic school (tracks of courses taken in
order, noise, dropouts driven by quiz scores and early activity) in one tenant, both trainers
run through ``POST /api/models/{model}/train`` (the kernel's rails: seeded holdout, fit in a
subprocess, ONNX, baseline on the same split, promotion gate), then served by the plugin's
routes through ``kernel.models``: explained, metered, permission-checked and tenant-isolated."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from education_helpers import API, member, ok
from recommendation_helpers import Client, environ, in_tenant, school_of, train

from backplane.testing import SeededTenant, seed_tenant, usage_of
from backplane_education.recommendations.school import School, record_completions
from backplane_education.recommendations.trainers import AT_RISK_MODEL, NEXT_COURSE_MODEL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Both databases: on PostgreSQL row-level security keeps each trainer to its tenant."""
    return environ(request, tmp_path)


def test_the_next_course_model_beats_popularity_and_serves_the_tenant_alone(
    backplane_client: Client, backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    school = school_of(client, backplane_tenant, seed=1, learners=240)
    other = seed_tenant(client, "other-school")
    theirs = school_of(client, other, seed=2, learners=60, tracks=2)
    learner = member(client, backplane_tenant, "ada")
    refused = client.get(f"{API}/recommendations", headers=learner["headers"])
    assert refused.status_code == 409, refused.text  # nothing trained yet: said so
    assert f"/api/models/{NEXT_COURSE_MODEL}/train" in refused.json()["detail"]

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

    recommendations_are_explained(client, backplane_tenant, school, learner)

    # the other tenant has no model of its own: ours never answers for it
    outsider = member(client, other, "outsider")

    async def give(kernel: Any) -> None:
        await record_completions(kernel, uuid.UUID(outsider["user_id"]), theirs.tracks[0][:1])

    in_tenant(client, other, give)
    blind = client.get(f"{API}/recommendations", headers=outsider["headers"])
    assert blind.status_code == 409, blind.text


def test_the_at_risk_model_beats_chance_and_answers_the_course_teachers(
    backplane_client: Client, backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    school = school_of(client, backplane_tenant, seed=3, learners=240)
    course = school.tracks[0][0]
    refused = client.get(f"{API}/courses/{course}/at-risk")
    assert refused.status_code == 409, refused.text
    assert f"/api/models/{AT_RISK_MODEL}/train" in refused.json()["detail"]

    risk = train(client, AT_RISK_MODEL)
    assert risk["status"] == "succeeded", risk
    auc = risk["card"]["metrics"]["auc"]
    print(f"at risk: auc {auc:.3f}, baseline {risk['card']['baseline']['auc']:.3f}")
    assert auc > 0.75 >= risk["card"]["baseline"]["auc"], risk["card"]
    assert risk["card"]["promotion"]["promoted"] is True
    # one row per enrolment whose outcome is known (at_risk_horizon_days: 30 by default)
    rows = risk["card"]["training_rows"] + risk["card"]["holdout_rows"]
    assert rows == finished_enrolments(client, backplane_tenant, horizon_days=30)

    listed = ok(client.get(f"{API}/courses/{course}/at-risk"))  # the owner manages every course
    assert listed, "the school has open enrolments in its most popular course"
    assert len(listed) == open_enrolments(client, backplane_tenant, course)
    risks = [row["risk"] for row in listed]
    assert risks == sorted(risks, reverse=True)
    assert all(0.0 <= r <= 1.0 for r in risks)
    pupil = member(client, backplane_tenant, "pupil")  # teaches, but not this course
    denied = client.get(f"{API}/courses/{course}/at-risk", headers=pupil["headers"])
    assert denied.status_code == 403, denied.text
    missing = client.get(f"{API}/courses/{uuid.uuid4()}/at-risk")
    assert missing.status_code == 404, missing.text


def enrolments_of(client: Client, tenant: SeededTenant) -> int:
    from sqlalchemy import func, select

    from backplane_education.models import Enrolment

    async def work(kernel: Any) -> int:
        return int(await kernel.db.scalar(select(func.count()).select_from(Enrolment)))

    return int(in_tenant(client, tenant, work))


def finished_enrolments(client: Client, tenant: SeededTenant, horizon_days: float) -> int:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func, or_, select

    from backplane_education.models import Enrolment

    cutoff = datetime.now(UTC) - timedelta(days=horizon_days)

    async def work(kernel: Any) -> int:
        query = select(func.count()).where(
            or_(Enrolment.status != "active", Enrolment.enrolled_at < cutoff)
        )
        return int(await kernel.db.scalar(query))

    return int(in_tenant(client, tenant, work))


def open_enrolments(client: Client, tenant: SeededTenant, course: uuid.UUID) -> int:
    from sqlalchemy import func, select

    from backplane_education.models import Enrolment

    async def work(kernel: Any) -> int:
        query = select(func.count()).where(
            Enrolment.course_id == course, Enrolment.status == "active"
        )
        return int(await kernel.db.scalar(query))

    return int(in_tenant(client, tenant, work))


def recommendations_are_explained(
    client: Client, tenant: SeededTenant, school: School, learner: dict[str, Any]
) -> None:
    track = school.tracks[1]

    async def give(kernel: Any) -> None:
        await record_completions(kernel, uuid.UUID(learner["user_id"]), track[:2])

    in_tenant(client, tenant, give)
    before = usage_of(client, tenant, "inference.requests")
    found = ok(client.get(f"{API}/recommendations", headers=learner["headers"]))
    assert usage_of(client, tenant, "inference.requests") == before + 1  # metered, one call
    assert 1 <= len(found) <= 5
    ours = {str(c) for t in school.tracks for c in t}
    assert {r["course_id"] for r in found} <= ours - {str(c) for c in track[:2]}
    first = found[0]
    assert first["course_id"] == str(track[2]), found  # the track's next course
    assert first["because_completed"] in {str(c) for c in track[:2]}
    title = school.titles[uuid.UUID(first["because_completed"])]
    assert first["reason"] == f"because you completed {title}"
    assert [r["score"] for r in found] == sorted((r["score"] for r in found), reverse=True)
