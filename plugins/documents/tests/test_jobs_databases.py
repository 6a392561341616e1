"""Bulk jobs on SQLite and on PostgreSQL (reached as the application role, row-level security
on, chunks of one job running at once): exact counts, the quota held exactly by racing chunks,
and another tenant kept out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import JOBS, csv_rows, job_zip, make_template, manifest, start_job
from litestar import Litestar
from litestar.testing import TestClient

from backplane.testing import (
    CHEAP_PASSWORD_HASHING,
    SeededTenant,
    run_tasks,
    seed_tenant,
    set_quota,
    usage_of,
)

Client = TestClient[Litestar]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "documents",
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
        "BACKPLANE_PLUGIN__DOCUMENTS__JOBS__CHUNK_ROWS": "50",
        "BACKPLANE_PLUGIN__DOCUMENTS__JOBS__PARALLEL_CHUNKS": "3",
        **CHEAP_PASSWORD_HASHING,
    }
    if request.param == "postgres":
        environ |= request.getfixturevalue("backplane_postgres_database")
    return environ


def test_a_job_counts_exactly_with_chunks_at_once(
    backplane_client: Client, backplane_app: Any, backplane_tenant: SeededTenant
) -> None:
    template_id = make_template(backplane_client)
    job = start_job(backplane_client, template_id, csv_rows(420, bad_every=140))
    run_tasks(backplane_client, timeout=90)
    finished = backplane_client.get(f"{JOBS}/{job['id']}").json()
    assert finished["status"] == "succeeded", finished
    assert finished["progress"] == {"done": 417, "failed": 3, "total": 420, "percent": 100.0}
    lines = manifest(job_zip(backplane_client, job["id"]))
    assert [line["row"] for line in lines] == list(range(1, 421))
    assert usage_of(backplane_app, backplane_tenant, "documents.generated") == 417
    other = seed_tenant(backplane_app, "other-db")
    seen = backplane_client.get(f"{JOBS}/{job['id']}", headers=other.headers)
    assert seen.status_code == 404
    assert backplane_client.get(JOBS, headers=other.headers).json() == []


def test_racing_chunks_hold_the_quota_exactly(
    backplane_client: Client, backplane_app: Any, backplane_tenant: SeededTenant
) -> None:
    set_quota(backplane_app, backplane_tenant, "documents.generated", 120, hard=True)
    template_id = make_template(backplane_client)
    job = start_job(backplane_client, template_id, csv_rows(400))
    run_tasks(backplane_client, timeout=90)
    stopped = backplane_client.get(f"{JOBS}/{job['id']}").json()
    assert stopped["status"] == "quota_exceeded", stopped
    assert stopped["progress"]["done"] == 120
    assert usage_of(backplane_app, backplane_tenant, "documents.generated") == 120
    lines = manifest(job_zip(backplane_client, job["id"]))
    assert sum(line["status"] == "done" for line in lines) == 120
