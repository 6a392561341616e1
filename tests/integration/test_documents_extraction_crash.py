"""Issue 21, acceptance 5 (bulk half): a 10,000-page bulk extraction job reports progress and
survives its worker being killed (``kill -9`` of ``backplane serve``, whose embedded worker
runs the chunks), ending with every page extracted exactly once and metered once.

Text-layer pages (typst, two lines a page) keep it fast: the point is the job machinery
(chunks, ledger, atomic counters, redelivery), not OCR, which has its own tests.

On PostgreSQL, as in production. On the embedded SQLite database the job also finishes, but
right after the restart a progress request may meet ``database is locked`` (500) while the
kernel's own start-up work and the redelivered chunk hold SQLite's single write lock (the
first API-key use of the new process writes too): a kernel matter, reported, not hidden here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli import kill_9, serving
from tests.integration.test_tasks_crash import _prepare, _query
from tests.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PAGES = 10_000
CHUNK = 1000


def _pdf(pages: int) -> bytes:
    import typst

    source = (
        "#set page(width: 100mm, height: 40mm, margin: 5mm)\n"
        '#let n = int(sys.inputs.at("pages"))\n'
        "#for i in range(1, n + 1) {\n"
        "  if i > 1 { pagebreak() }\n"
        '  par("Page " + str(i) + " of the bulk extraction")\n'
        '  par("Reference: REF-" + str(i))\n'
        "}\n"
    )
    return typst.compile(source.encode(), sys_inputs={"pages": str(pages)})


def _job(base: str, key: str, job_id: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{base}/api/documents/extraction-jobs/{job_id}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_10000_page_job_survives_a_killed_worker(
    postgres_app_env: dict[str, str], data_dir: Path, tmp_path: Path
) -> None:
    env = {
        "BACKPLANE_DATA_DIR": str(data_dir),
        "BACKPLANE_PLUGINS": "documents",
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.1",
        "BACKPLANE_TASKS__POLL_INTERVAL_MS": "100",
        "BACKPLANE_PLUGIN__DOCUMENTS__PROCESSING_CHUNK_PAGES": str(CHUNK),
    }
    env.update(postgres_app_env)
    key = _prepare(env)
    headers = {"Authorization": f"Bearer {key}"}
    log = tmp_path / "serve.log"
    seen: list[tuple[str, int]] = []
    started = time.monotonic()
    with serving(env, log, timeout=30) as server:
        stored = httpx.post(
            f"{server.base}/api/files?name=bulk.pdf",
            content=_pdf(PAGES),
            headers=headers,
            timeout=60,
        )
        assert stored.status_code == 201, stored.text
        created = httpx.post(
            f"{server.base}/api/documents/extraction-jobs",
            json={"file_ids": [stored.json()["id"]]},
            headers=headers,
            timeout=60,
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        assert (created.json()["total_pages"], created.json()["chunks"]) == (PAGES, PAGES // CHUNK)

        def midway() -> bool:
            job = _job(server.base, key, job_id)
            seen.append((job["status"], job["done_pages"]))
            return job["done_pages"] >= PAGES // 5

        wait_for(midway, message="a fifth of the pages", timeout=60, interval=0.05)
        kill_9(server.process)
    killed_at = seen[-1][1]
    assert 0 < killed_at < PAGES, seen
    with serving(env, log, timeout=30) as server:

        def finished() -> bool:
            job = _job(server.base, key, job_id)
            seen.append((job["status"], job["done_pages"]))
            return job["status"] == "succeeded"

        wait_for(finished, message="the job to finish after the restart", timeout=90, interval=0.2)
        final = _job(server.base, key, job_id)
        extraction = httpx.get(
            f"{server.base}/api/documents/extractions?job_id={job_id}", headers=headers, timeout=10
        ).json()[0]
        full = httpx.get(
            f"{server.base}/api/documents/extractions/{extraction['id']}",
            headers=headers,
            timeout=60,
        ).json()
    elapsed = time.monotonic() - started
    progress = [done for _status, done in seen]
    assert progress == sorted(progress), "progress never goes back"
    assert (final["done_pages"], final["total_pages"], final["progress"]) == (PAGES, PAGES, 1.0)
    assert (final["chunks_done"], final["failed_documents"]) == (PAGES // CHUNK, 0)
    assert (extraction["status"], extraction["pages"], extraction["done_pages"]) == (
        "done", PAGES, PAGES,
    )  # fmt: skip
    texts = [page["text"] for page in full["text"]]
    assert texts == [
        f"Page {i} of the bulk extraction\nReference: REF-{i}" for i in range(1, PAGES + 1)
    ]
    [(pages, distinct)] = _query(
        env, "SELECT count(*), count(DISTINCT number) FROM documents_extraction_pages"
    )
    assert (pages, distinct) == (PAGES, PAGES)
    [(chunks,)] = _query(env, "SELECT count(*) FROM documents_extraction_chunks")
    assert chunks == PAGES // CHUNK
    [(metered,)] = _query(
        env,
        "SELECT sum(value) FROM backplane_usage_events WHERE meter = 'documents.pages_processed'",
    )
    assert metered == PAGES  # each chunk metered once, whatever ran twice
    print(json.dumps({"pages": PAGES, "killed_at": killed_at, "elapsed_s": round(elapsed, 1)}))
