"""How jobs end besides succeeding: cancelled by a user, or failed by a chunk that keeps
failing (its last attempt fails the job instead of leaving it running for ever)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import JOBS, csv_rows, job_zip, make_template, manifest, start_job
from litestar import Litestar
from litestar.testing import TestClient

from backplane.testing import CHEAP_PASSWORD_HASHING, run_tasks

Client = TestClient[Litestar]


@pytest.fixture
def backplane_environ(tmp_path: Path) -> dict[str, str]:
    return {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "documents",
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
        "BACKPLANE_TASKS__MIN_BACKOFF_MS": "1",
        "BACKPLANE_TASKS__MAX_BACKOFF_MS": "5",
        "BACKPLANE_PLUGIN__DOCUMENTS__JOBS__CHUNK_ROWS": "10",
        **CHEAP_PASSWORD_HASHING,
    }


def test_a_cancelled_job_stops_and_delivers_what_it_made(backplane_client: Client) -> None:
    template_id = make_template(backplane_client)
    job = start_job(backplane_client, template_id, csv_rows(500))
    cancelled = backplane_client.post(f"{JOBS}/{job['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    run_tasks(backplane_client, timeout=60)
    ended = backplane_client.get(f"{JOBS}/{job['id']}").json()
    assert ended["status"] == "cancelled"
    assert ended["zip_ready"] is True
    produced = ended["progress"]["done"]
    assert produced < 500  # the chunks queued when it was cancelled at most
    lines = manifest(job_zip(backplane_client, job["id"]))
    assert sum(line["status"] == "done" for line in lines) == produced
    again = backplane_client.post(f"{JOBS}/{job['id']}/cancel")
    assert again.status_code == 409
    assert "a cancelled job cannot be cancelled" in again.text


def test_a_chunk_failing_on_every_attempt_fails_the_job(
    backplane_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backplane_documents import jobs_run, jobs_tasks

    real = jobs_run.run_chunk

    async def broken_second_chunk(
        kernel: Any, job_id: Any, chunk: int, *args: Any, **kw: Any
    ) -> Any:
        if chunk == 1:
            raise RuntimeError("the store is down")
        return await real(kernel, job_id, chunk, *args, **kw)

    monkeypatch.setattr(jobs_tasks, "run_chunk", broken_second_chunk)
    template_id = make_template(backplane_client)
    job = start_job(backplane_client, template_id, csv_rows(30))
    run_tasks(backplane_client, timeout=60, allow_failures=True)
    ended = backplane_client.get(f"{JOBS}/{job['id']}").json()
    assert ended["status"] == "failed", ended
    assert ended["error"] == "chunk 2 failed: the store is down"
    assert ended["zip_ready"] is True  # rows 1-10 (and 21-30 if it ran first) are delivered
    lines = manifest(job_zip(backplane_client, job["id"]))
    assert [line["row"] for line in lines][:10] == list(range(1, 11))
    assert all(not 11 <= line["row"] <= 20 for line in lines)
