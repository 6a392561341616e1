"""Tenant isolation, quotas under concurrency and bulk jobs of the extraction routes, on
SQLite (the session's tenant filter) and on PostgreSQL (the application role, row-level
security on, counters moved by concurrent UPDATEs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from processing_fixtures import docx_bytes, pdf_from_pages
from test_extraction_routes import (
    EXTRACTIONS,
    INVOICE,
    JOBS,
    METER,
    RULES,
    _invoice_template,
    _store,
    _upload,
)

from backplane.testing import (
    CHEAP_PASSWORD_HASHING,
    SeededTenant,
    run_tasks,
    seed_tenant,
    set_quota,
    usage_of,
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "documents",
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
        **CHEAP_PASSWORD_HASHING,
    }
    if request.param == "postgres":
        environ |= request.getfixturevalue("backplane_postgres_database")
    return environ


def test_another_tenant_sees_nothing(
    backplane_client: TestClient[Litestar], backplane_app: Litestar
) -> None:
    client = backplane_client
    mine = _upload(client, pdf_from_pages([INVOICE]), "a.pdf").json()
    job = client.post(JOBS, json={"file_ids": [mine["file_id"]]}).json()
    run_tasks(client)
    template_id = _invoice_template(client)
    as_b = seed_tenant(backplane_app, "other-tenant").headers
    assert client.get(f"{EXTRACTIONS}/{mine['id']}", headers=as_b).status_code == 404
    assert client.get(EXTRACTIONS, headers=as_b).json() == []
    assert client.get(f"{JOBS}/{job['id']}", headers=as_b).status_code == 404
    assert (
        client.post(EXTRACTIONS, json={"file_id": mine["file_id"]}, headers=as_b).status_code == 404
    )
    assert client.post(JOBS, json={"file_ids": [mine["file_id"]]}, headers=as_b).status_code == 404
    own = client.post("/api/files?name=b.pdf", content=pdf_from_pages([INVOICE]), headers=as_b)
    assert own.status_code == 201, own.text
    foreign_template = client.post(
        EXTRACTIONS,
        json={"file_id": own.json()["id"], "template_id": template_id, "rules": RULES},
        headers=as_b,
    )
    assert foreign_template.status_code == 404
    # A still sees its own, whole
    assert client.get(f"{EXTRACTIONS}/{mine['id']}").json()["text"] == mine["text"]
    assert len(client.get(EXTRACTIONS).json()) == 2  # the upload and the job's


def test_extractions_racing_for_the_last_pages_of_a_quota(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    set_quota(backplane_client, backplane_tenant, METER, 5)
    data = pdf_from_pages([["one"], ["two"]])
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda i: _upload(backplane_client, data, f"{i}.pdf"), range(6)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 201, 429, 429, 429, 429], [a.text for a in answers]
    assert usage_of(backplane_client, backplane_tenant, METER) == 4
    assert len(backplane_client.get(EXTRACTIONS).json()) == 2


def test_a_bulk_job_extracts_every_file_and_fails_bad_ones_alone(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    template_id = _invoice_template(backplane_client)
    pdf = _store(backplane_client, pdf_from_pages([INVOICE, ["p2"], ["p3"]]), "a.pdf")
    docx = _store(
        backplane_client,
        docx_bytes(["Invoice number: D-1", "\f", "Total: 3", "Customer: Bob"]),
        "b.docx",
    )
    text = _store(backplane_client, b"plain text is not a document here\n", "c.txt")
    created = backplane_client.post(
        JOBS, json={"file_ids": [pdf, docx, text], "template_id": template_id, "rules": RULES}
    )
    assert created.status_code == 202, created.text
    job = created.json()
    assert (job["status"], job["total_pages"], job["documents"], job["failed_documents"]) == (
        "queued", 4, 3, 1,
    )  # fmt: skip
    run_tasks(backplane_client, timeout=60)
    done = backplane_client.get(f"{JOBS}/{job['id']}").json()
    assert (done["status"], done["progress"], done["done_pages"], done["total_pages"]) == (
        "succeeded", 1.0, 5, 5,
    )  # fmt: skip
    rows = {e["name"]: e for e in backplane_client.get(f"{EXTRACTIONS}?job_id={job['id']}").json()}
    assert rows["a.pdf"]["fields"] == {
        "number": "INV-77",
        "total": 1250.0,
        "customer": "Ada Lovelace",
        "due": None,
    }
    assert rows["b.docx"]["fields"] == {
        "number": "D-1",
        "total": 3.0,
        "customer": "Bob",
        "due": None,
    }
    assert (rows["b.docx"]["status"], rows["b.docx"]["pages"]) == ("done", 2)
    assert rows["c.txt"]["status"] == "failed"
    assert "text/plain" in rows["c.txt"]["error"]
    pages = backplane_client.get(f"{EXTRACTIONS}/{rows['a.pdf']['id']}").json()["text"]
    assert [p["text"] for p in pages] == ["\n".join(INVOICE), "p2", "p3"]
    assert usage_of(backplane_client, backplane_tenant, METER) == 5
