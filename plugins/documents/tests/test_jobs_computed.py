"""Computed fields: filled by the tenant's own model through ``kernel.models``, one call per
chunk of a bulk job (batched), metered as inference; bad inputs fail their row only."""

from __future__ import annotations

from typing import Any

import pytest
from jobs_helpers import JOBS, TEMPLATES, job_zip, linear_onnx, make_template, start_job
from litestar import Litestar
from litestar.testing import TestClient

from backplane.testing import SeededTenant, run_tasks, usage_of

Client = TestClient[Litestar]


@pytest.fixture
def backplane_environ(backplane_environ: dict[str, str]) -> dict[str, str]:
    # 50 rows a chunk: 120 rows are three chunks, so three model calls
    return {**backplane_environ, "BACKPLANE_PLUGIN__DOCUMENTS__JOBS__CHUNK_ROWS": "50"}


def test_computed_fields_are_filled_by_the_tenants_model_once_per_chunk(
    backplane_client: Client, backplane_app: Any, backplane_tenant: SeededTenant
) -> None:
    uploaded = backplane_client.post(
        "/api/models",
        files={"file": ("linear.onnx", linear_onnx(), "application/octet-stream")},
        data={"name": "linear", "max_batch_size": "64"},
    )
    assert uploaded.status_code == 201, uploaded.text
    template_id = make_template(
        backplane_client,
        name="scored",
        source="{{ name }}: {{ '%.1f'|format(score) }}",
        fields=[
            {"name": "name"},
            {
                "name": "score",
                "type": "number",
                "computed": {
                    "model": "linear",
                    "input": "X",
                    "inputs": ["a", "b"],
                    "output": "score",
                },
            },
        ],
    )
    lines = ["name,a,b"] + [f"p{i},{i},1" for i in range(1, 121)] + ["bad,x,1"]
    job = start_job(backplane_client, template_id, ("\n".join(lines) + "\n").encode())
    run_tasks(backplane_client, timeout=60)
    finished = backplane_client.get(f"{JOBS}/{job['id']}").json()
    assert finished["status"] == "succeeded", finished
    assert finished["progress"]["done"] == 120
    archive = job_zip(backplane_client, job["id"])
    assert archive.read("001.html") == b"p1: 6.0"  # 2*1 + 3*1 + 1
    assert archive.read("120.html") == b"p120: 244.0"
    [bad] = backplane_client.get(f"{JOBS}/{job['id']}/rows", params={"failed": 1}).json()
    assert bad["error"] == (
        "row 121 (line 122): computed field 'score': its input 'a' is not a number "
        "(could not convert string to float: 'x')"
    )
    # batched: one model call per chunk (three chunks), one inference row per document
    assert usage_of(backplane_app, backplane_tenant, "inference.requests") == 3
    assert usage_of(backplane_app, backplane_tenant, "inference.rows") == 120


def test_a_computed_field_must_name_a_model_the_tenant_has(backplane_client: Client) -> None:
    template_id = make_template(
        backplane_client,
        name="unknown-model",
        source="{{ score }}",
        fields=[
            {
                "name": "score",
                "type": "number",
                "computed": {"model": "nope", "inputs": ["a"], "output": "y"},
            }
        ],
    )
    job = start_job(backplane_client, template_id, b"a\n1\n2\n")
    run_tasks(backplane_client, timeout=30)
    rows = backplane_client.get(f"{JOBS}/{job['id']}/rows").json()
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert rows[0]["error"].startswith("row 1 (line 2): computed field 'score' (model nope):")
    bad_schema = backplane_client.post(
        TEMPLATES,
        json={
            "name": "chained",
            "engine": "html",
            "source": "x",
            "fields": [
                {
                    "name": "x",
                    "type": "number",
                    "computed": {"model": "m", "inputs": ["y"], "output": "o"},
                },
                {
                    "name": "y",
                    "type": "number",
                    "computed": {"model": "m", "inputs": ["a"], "output": "o"},
                },
            ],
        },
    )
    assert bad_schema.status_code == 400
    assert "'x' reads 'y', which is computed too" in bad_schema.text


def test_a_single_render_fills_computed_fields_too(backplane_client: Client) -> None:
    uploaded = backplane_client.post(
        "/api/models",
        files={"file": ("linear.onnx", linear_onnx(), "application/octet-stream")},
        data={"name": "linear"},
    )
    assert uploaded.status_code == 201, uploaded.text
    template_id = make_template(
        backplane_client,
        name="one",
        source="{{ name }}={{ score }}",
        fields=[
            {"name": "name"},
            {
                "name": "score",
                "type": "number",
                "computed": {
                    "model": "linear",
                    "input": "X",
                    "inputs": ["a", "b"],
                    "output": "score",
                },
            },
        ],
    )
    rendered = backplane_client.post(
        f"{TEMPLATES}/{template_id}/render", json={"fields": {"name": "z", "a": 1, "b": 1}}
    )
    assert rendered.status_code == 201, rendered.text
    content = backplane_client.get(rendered.json()["download_url"])
    assert content.content == b"z=6.0"
    refused = backplane_client.post(
        f"{TEMPLATES}/{template_id}/render", json={"fields": {"name": "z", "a": "x", "b": 1}}
    )
    assert refused.status_code == 400
    assert "computed field 'score': its input 'a' is not a number" in refused.text
