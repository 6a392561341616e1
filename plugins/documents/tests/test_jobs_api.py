"""Bulk jobs through the HTTP API: progress, per-row errors, reports, the ZIP, usage."""

from __future__ import annotations

import hashlib
from typing import Any

from jobs_helpers import JOBS, TEMPLATES, csv_rows, job_zip, make_template, manifest, start_job
from litestar import Litestar
from litestar.testing import TestClient

from backplane.testing import SeededTenant, run_tasks, usage_of

Client = TestClient[Litestar]


def test_a_csv_job_produces_a_document_per_good_row_and_an_error_per_bad_one(
    backplane_client: Client, backplane_app: Any, backplane_tenant: SeededTenant
) -> None:
    template_id = make_template(backplane_client)
    data = csv_rows(250, bad_every=50) + b"Extra,1,2,3\n"  # 5 bad amounts, 1 bad row
    job = start_job(backplane_client, template_id, data, name_field="name")
    assert job["status"] == "queued"
    assert job["progress"] == {"done": 0, "failed": 0, "total": 251, "percent": 0.0}
    run_tasks(backplane_client, timeout=60)
    finished = backplane_client.get(f"{JOBS}/{job['id']}").json()
    assert finished["status"] == "succeeded", finished
    assert finished["progress"] == {"done": 245, "failed": 6, "total": 251, "percent": 100.0}
    assert finished["zip_ready"] is True
    failed = backplane_client.get(f"{JOBS}/{job['id']}/rows", params={"failed": 1}).json()
    assert [r["number"] for r in failed] == [50, 100, 150, 200, 250, 251]
    assert failed[0]["line"] == 51
    assert failed[0]["error"].startswith("row 50 (line 51): invalid fields: Expected `float`")
    assert "amount" in failed[0]["error"]
    assert failed[-1]["error"] == "row 251 (line 252): 4 values for 3 columns"
    first = backplane_client.get(f"{JOBS}/{job['id']}/rows", params={"limit": 1}).json()
    assert first[0]["status"] == "done"
    assert first[0]["report"]["ok"] is True
    assert first[0]["report"]["sha256"] == first[0]["sha256"]
    archive = job_zip(backplane_client, job["id"])
    names = archive.namelist()
    assert len(names) == 246
    assert names[-1] == "manifest.jsonl"
    assert "Person 1.html" in names
    assert archive.read("Person 7.html") == b"<h1>Person 7</h1><p>7.5 n7</p>"
    lines = manifest(archive)
    assert [line["row"] for line in lines] == list(range(1, 252))
    assert sum(line["status"] == "done" for line in lines) == 245
    assert lines[6]["sha256"] == hashlib.sha256(archive.read("Person 7.html")).hexdigest()
    assert usage_of(backplane_app, backplane_tenant, "documents.generated") == 245
    assert usage_of(backplane_app, backplane_tenant, "documents.pages") == 245


def test_json_lines_with_list_fields(backplane_client: Client) -> None:
    template_id = make_template(
        backplane_client,
        name="order",
        source="{% for l in lines %}{{ l.sku }}x{{ l.qty }};{% endfor %}",
        fields=[
            {
                "name": "lines",
                "type": "list",
                "items": [{"name": "sku"}, {"name": "qty", "type": "integer"}],
            }
        ],
    )
    data = b'{"lines": [{"sku": "a", "qty": 2}]}\n{"lines": "nope"}\n'
    job = start_job(backplane_client, template_id, data, format="jsonl")
    run_tasks(backplane_client, timeout=30)
    rows = backplane_client.get(f"{JOBS}/{job['id']}/rows").json()
    assert [r["status"] for r in rows] == ["done", "failed"]
    assert "lines" in rows[1]["error"]
    archive = job_zip(backplane_client, job["id"])
    assert archive.read("1.html") == b"ax2;"


def test_the_error_rate_fails_a_job_and_still_delivers_what_was_produced(
    backplane_client: Client,
) -> None:
    template_id = make_template(backplane_client)
    job = start_job(backplane_client, template_id, csv_rows(20, bad_every=2), max_error_rate=0.2)
    run_tasks(backplane_client, timeout=30)
    finished = backplane_client.get(f"{JOBS}/{job['id']}").json()
    assert finished["status"] == "failed"
    assert finished["error"] == (
        "10 of 20 rows failed (50.0%), above the job's max_error_rate of 20.0%"
    )
    assert finished["zip_ready"] is True
    assert len(job_zip(backplane_client, job["id"]).namelist()) == 11


def test_bad_uploads_are_refused_with_the_reason(backplane_client: Client) -> None:
    template_id = make_template(backplane_client)
    url = f"{TEMPLATES}/{template_id}/jobs"
    cases = [
        ({"format": "csv"}, b"", 400, "no body"),
        ({"format": "csv"}, b"name,amount\n", 400, "no data rows"),
        ({"format": "xml"}, b"a\n1\n", 400, "unknown format 'xml'"),
        ({}, b"a\n1\n", 400, "format=csv or format=jsonl"),
        ({"format": "csv", "encoding": "klingon"}, b"a\n1\n", 400, "unknown encoding"),
        ({"format": "csv"}, "name\nZoë\n".encode("latin-1"), 400, "line 2 is not valid utf-8"),
        ({"format": "csv", "name_field": "nope"}, b"a\n1\n", 400, "name_field 'nope'"),
        ({"format": "csv", "max_error_rate": "2"}, b"a\n1\n", 400, "max_error_rate"),
    ]
    for params, body, status, message in cases:
        answer = backplane_client.post(url, content=body, params=params)
        assert answer.status_code == status, (params, answer.text)
        assert message in answer.text, (params, answer.text)
    missing = backplane_client.post(
        f"{TEMPLATES}/00000000-0000-0000-0000-000000000000/jobs",
        content=b"a\n1\n",
        params={"format": "csv"},
    )
    assert missing.status_code == 404
    assert backplane_client.get(f"{JOBS}/00000000-0000-0000-0000-000000000000").status_code == 404
