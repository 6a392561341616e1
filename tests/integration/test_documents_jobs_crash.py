"""Issue 21, acceptance 3: a bulk job of 10,000 rows survives a worker killed with SIGKILL
midway and ends with exactly 10,000 outcomes, 10,000 documents metered, and a correct ZIP.

A real ``backplane serve`` (the relay) and ``backplane worker`` on RabbitMQ, which redelivers
the killed worker's unacknowledged chunk tasks to its successor. Each chunk commits its
outcomes, usage and stored documents with its task's done-mark, so the chunks the killed worker
was running are done again from scratch, and those it finished are not. The HTML engine keeps
the 10,000 renders within the time a test may take. On PostgreSQL only (the app connecting as
its row-level-security-bound role), as every big-N crash test: one run of each kind.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli import BACKPLANE, kill_9, process, serving
from tests.integration.test_tasks_crash import _prepare, _purge, _query
from tests.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.postgres]

ROWS = 10_000
TEMPLATE = "<h1>{{ name }}</h1><p>{{ '%.2f'|format(amount) }}</p>"


@pytest.fixture
def env(data_dir: Path, rabbitmq_url: str, postgres_app_env: dict[str, str]) -> dict[str, str]:
    """PostgreSQL only, like every big-N crash test (CI time: one run of each kind)."""
    return {
        **postgres_app_env,
        "BACKPLANE_DATA_DIR": str(data_dir),
        "BACKPLANE_PLUGINS": "documents",
        "BACKPLANE_BROKER_URL": rabbitmq_url,
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.1",
        "BACKPLANE_TASKS__POLL_INTERVAL_MS": "100",
        "BACKPLANE_TASKS__RESEND_AFTER_S": "30",
        "BACKPLANE_PLUGIN__DOCUMENTS__JOBS__CHUNK_ROWS": "100",
    }


def _data() -> bytes:
    lines = ["name,amount"] + [f"Customer {i},{i * 1.25}" for i in range(1, ROWS + 1)]
    return ("\n".join(lines) + "\n").encode()


def _job(base: str, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{base}/api/documents/jobs/{job_id}", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_10000_row_job_survives_a_killed_worker(env: dict[str, str], tmp_path: Path) -> None:
    key = _prepare(env)
    _purge(env)
    headers = {"Authorization": f"Bearer {key}"}
    worker_args = [BACKPLANE, "worker", "--processes", "1", "--threads", "2"]
    with serving(env, tmp_path / "serve.log", timeout=30) as server:
        base = server.base
        created = httpx.post(
            f"{base}/api/documents/templates",
            json={
                "name": "receipt",
                "engine": "html",
                "source": TEMPLATE,
                "fields": [{"name": "name"}, {"name": "amount", "type": "number"}],
            },
            headers=headers,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        with process(worker_args, env, tmp_path / "worker.log") as worker:
            started = httpx.post(
                f"{base}/api/documents/templates/{created.json()['id']}/jobs",
                params={"format": "csv"},
                content=_data(),
                headers=headers,
                timeout=30,
            )
            assert started.status_code == 202, started.text
            job_id = started.json()["id"]
            wait_for(
                lambda: _job(base, headers, job_id)["progress"]["done"] >= 2_500,
                message="a quarter of the job",
                timeout=40,
                interval=0.2,
            )
            kill_9(worker)
        killed = _job(base, headers, job_id)
        assert killed["status"] == "running"
        assert 2_500 <= killed["progress"]["done"] < ROWS
        with process(worker_args, env, tmp_path / "worker.log"):
            wait_for(
                lambda: _job(base, headers, job_id)["status"] == "succeeded",
                message="the job's end after the worker's restart",
                timeout=90,
                interval=0.5,
            )
            time.sleep(1.0)  # let any duplicate delivery arrive and be acknowledged
            finished = _job(base, headers, job_id)
            archive_bytes = httpx.get(
                f"{base}/api/documents/jobs/{job_id}/zip", headers=headers, timeout=60
            )
            usage = httpx.get(f"{base}/api/billing/usage", headers=headers, timeout=10)
    assert finished["progress"] == {"done": ROWS, "failed": 0, "total": ROWS, "percent": 100.0}
    [(outcomes, distinct, done)] = _query(
        env,
        "SELECT count(*), count(DISTINCT number), sum(CASE WHEN status = 'done' THEN 1 END) "
        "FROM documents_job_rows",
    )
    assert (outcomes, distinct, done) == (ROWS, ROWS, ROWS)
    meters = {m["meter"]: m for m in usage.json()["meters"]}
    assert meters["documents.generated"]["value"] == ROWS  # each document metered once
    assert archive_bytes.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(archive_bytes.content))
    assert archive.testzip() is None
    names = archive.namelist()
    assert len(names) == ROWS + 1
    manifest = [json.loads(line) for line in archive.read("manifest.jsonl").splitlines()]
    assert [line["row"] for line in manifest] == list(range(1, ROWS + 1))
    for line in manifest:
        content = archive.read(line["file"])
        number = line["row"]
        assert content == f"<h1>Customer {number}</h1><p>{number * 1.25:.2f}</p>".encode()
        assert line["sha256"] == hashlib.sha256(content).hexdigest()
