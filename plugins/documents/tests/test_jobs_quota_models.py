"""Bulk jobs and the kernel's rails: a spent quota stops a job (and the API answers 429),
usage equals the documents produced, another tenant sees nothing of a job."""

from __future__ import annotations

from typing import Any

from jobs_helpers import (
    JOBS,
    TEMPLATES,
    csv_rows,
    job_zip,
    make_template,
    manifest,
    start_job,
)
from litestar import Litestar
from litestar.testing import TestClient

from backplane.testing import SeededTenant, run_tasks, seed_tenant, set_quota, usage_of
from backplane_documents.jobs_settings import JobSettings

Client = TestClient[Litestar]


def test_a_spent_quota_stops_the_job_and_the_next_one_is_refused(
    backplane_client: Client, backplane_app: Any, backplane_tenant: SeededTenant
) -> None:
    chunk = JobSettings().chunk_rows  # the default: the quota runs out inside the first chunk
    assert 130 < chunk < 300
    set_quota(backplane_app, backplane_tenant, "documents.generated", 130, hard=True)
    template_id = make_template(backplane_client)
    job = start_job(backplane_client, template_id, csv_rows(300))
    run_tasks(backplane_client, timeout=60)
    stopped = backplane_client.get(f"{JOBS}/{job['id']}").json()
    assert stopped["status"] == "quota_exceeded", stopped
    assert stopped["error"].startswith("quota for documents.generated spent: 130 of 130")
    assert stopped["progress"]["done"] == 130
    assert stopped["progress"]["failed"] == chunk - 130  # the rest of the chunk at the limit
    assert usage_of(backplane_app, backplane_tenant, "documents.generated") == 130
    # the pages of the refused rows are not counted (their chunk metered in two steps)
    assert usage_of(backplane_app, backplane_tenant, "documents.pages") == 130
    archive = job_zip(backplane_client, job["id"])  # what was produced (and paid) is delivered
    lines = manifest(archive)
    assert len(lines) == chunk
    assert sum(line["status"] == "done" for line in lines) == 130
    assert len(archive.namelist()) == 131
    refused = backplane_client.post(
        f"{TEMPLATES}/{template_id}/jobs", content=csv_rows(3), params={"format": "csv"}
    )
    assert refused.status_code == 429, refused.text
    assert "documents.generated" in refused.text
    jobs = backplane_client.get(JOBS).json()
    assert [j["id"] for j in jobs] == [job["id"]]  # the refused request left no job


def test_another_tenant_sees_nothing_of_a_job(
    backplane_client: Client, backplane_app: Any, backplane_anonymous_client: Client
) -> None:
    template_id = make_template(backplane_client)
    job = start_job(backplane_client, template_id, csv_rows(3))
    run_tasks(backplane_client, timeout=30)
    other = seed_tenant(backplane_app, "other")
    headers = other.headers
    for path in ("", "/rows", "/zip"):
        answer = backplane_anonymous_client.get(f"{JOBS}/{job['id']}{path}", headers=headers)
        assert answer.status_code == 404, (path, answer.text)
    cancel = backplane_anonymous_client.post(f"{JOBS}/{job['id']}/cancel", headers=headers)
    assert cancel.status_code == 404
    assert backplane_anonymous_client.get(JOBS, headers=headers).json() == []
    start = backplane_anonymous_client.post(
        f"{TEMPLATES}/{template_id}/jobs",
        content=csv_rows(3),
        params={"format": "csv"},
        headers=headers,
    )
    assert start.status_code == 404


def test_a_viewer_reads_jobs_but_cannot_start_one(
    backplane_client: Client, backplane_client_as: Any
) -> None:
    template_id = make_template(backplane_client)
    job = start_job(backplane_client, template_id, csv_rows(2))
    viewer = backplane_client_as("viewer")
    assert viewer.get(f"{JOBS}/{job['id']}").status_code == 200
    refused = viewer.post(
        f"{TEMPLATES}/{template_id}/jobs", content=csv_rows(2), params={"format": "csv"}
    )
    assert refused.status_code == 403
    assert viewer.post(f"{JOBS}/{job['id']}/cancel").status_code == 403
