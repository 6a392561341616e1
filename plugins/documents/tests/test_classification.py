"""Document classification by a tenant-trained model, end to end and for real: extractions of
synthetic invoices and letters (typeset PDFs with a text layer, distinct vocabularies, fixed
seed) are labelled, ``POST /api/models/document_type/train`` runs the documents trainer through
the kernel's training rails (a real ONNX model), and new extractions, single and bulk, are
classified through ``kernel.models``: right, tenant-isolated, metered, and refused clearly."""

from __future__ import annotations

import json
import random
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from processing_fixtures import pdf_from_pages

from backplane.testing import (
    CHEAP_PASSWORD_HASHING,
    SeededTenant,
    run_tasks,
    seed_tenant,
    set_quota,
    usage_of,
)
from backplane_documents.text_features import feature_matrix, hashed_bag_of_words, tokens

Client = TestClient[Litestar]
EXTRACTIONS = "/api/documents/extractions"
JOBS = "/api/documents/extraction-jobs"
MODEL = "document_type"
CLASSIFY = {"model": MODEL}

INVOICE_WORDS = "invoice total amount due payment vat net gross quantity unit price subtotal"
LETTER_WORDS = "dear sincerely regards hope meeting thank you kindly letter wishes warmly"
COMMON = "the and of to for with on our your this we"


def synthetic_text(kind: str, rng: random.Random) -> list[str]:
    """Three lines of a document of ``kind`` (``invoice`` or ``letter``): mostly its own
    vocabulary, some words every document shares."""
    own = (INVOICE_WORDS if kind == "invoice" else LETTER_WORDS).split()
    common = COMMON.split()
    return [
        " ".join(rng.choice(own if rng.random() < 0.6 else common) for _ in range(12))
        for _ in range(3)
    ]


def extract(client: Client, lines: list[str], **form: Any) -> Any:
    pdf = pdf_from_pages([lines])
    return client.post(
        EXTRACTIONS,
        files={"file": ("doc.pdf", pdf, "application/octet-stream")},
        data={k: v if isinstance(v, str) else json.dumps(v) for k, v in form.items()},
    )


def train(client: Client) -> dict[str, Any]:
    started = client.post(f"/api/models/{MODEL}/train")
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 120
    while True:  # the run's task hands the fit to a subprocess and follows it
        run_tasks(client, timeout=120)
        run = client.get(f"/api/models/{MODEL}/training-runs/{started.json()['id']}")
        assert run.status_code == 200, run.text
        if run.json()["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return dict(run.json())
        time.sleep(0.2)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Both databases: on PostgreSQL row-level security is what keeps the trainer to the
    tenant's own labelled extractions."""
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "documents",
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
        "BACKPLANE_TRAINING__TIME_LIMIT_S": "90",
        **CHEAP_PASSWORD_HASHING,
    }
    if request.param == "postgres":
        environ |= request.getfixturevalue("backplane_postgres_database")
    return environ


@pytest.fixture
def trained(backplane_client: Client) -> Client:
    """The tenant with 24 labelled extractions (12 invoices, 12 letters) and a trained model."""
    rng = random.Random(2026)
    for index in range(24):
        kind = "invoice" if index % 2 == 0 else "letter"
        made = extract(backplane_client, synthetic_text(kind, rng))
        assert made.status_code == 201, made.text
        labelled = backplane_client.put(
            f"{EXTRACTIONS}/{made.json()['id']}/label", json={"label": kind}
        )
        assert labelled.status_code == 200, labelled.text
        assert labelled.json()["label"] == kind
    run = train(backplane_client)
    assert run["status"] == "succeeded", run
    assert run["card"]["trainer"] == "documents.document_type"
    assert run["card"]["metrics"]["accuracy"] >= 0.8
    return backplane_client


def test_the_featuriser_is_the_documented_function() -> None:
    assert tokens("Invoice No. 42: TOTAL_due, Grüße") == [
        "invoice",
        "no",
        "42",
        "total",
        "due",
        "grüße",
    ]
    vector = hashed_bag_of_words("Total total due", n_features=64)
    expected = np.zeros(64)
    expected[zlib.crc32(b"total") % 64] += 2
    expected[zlib.crc32(b"due") % 64] += 1
    assert vector.dtype == np.float32
    np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), rtol=1e-6)
    assert not hashed_bag_of_words("", 8).any()
    assert feature_matrix(["a b", "c"], 16).shape == (2, 16)
    with pytest.raises(ValueError, match="n_features"):
        hashed_bag_of_words("x", 0)


def test_labelled_extractions_train_a_model_that_classifies_new_documents(
    trained: Client,
    backplane_app: Any,
    backplane_tenant: SeededTenant,
    backplane_anonymous_client: Client,
) -> None:
    """One trained model (training costs seconds), then every use of it: single and bulk
    classification, another tenant refused, a spent inference quota refused."""
    classify_single(trained, backplane_app, backplane_tenant)
    classify_in_bulk(trained)
    refuse_another_tenant(trained, backplane_app, backplane_anonymous_client)
    refuse_a_spent_quota(trained, backplane_app, backplane_tenant)


def classify_single(trained: Client, backplane_app: Any, backplane_tenant: SeededTenant) -> None:
    rng = random.Random(99)
    before = usage_of(backplane_app, backplane_tenant, "inference.requests")
    for kind in ("invoice", "letter", "invoice", "letter"):
        made = extract(trained, synthetic_text(kind, rng), classify=CLASSIFY)
        assert made.status_code == 201, made.text
        found = made.json()["classification"]
        assert found["label"] == kind, found
        assert found["model"] == MODEL
        assert 0.5 < found["score"] <= 1.0
        assert len(found["probabilities"]) == 2
        assert abs(sum(found["probabilities"]) - 1) < 1e-4
        shown = trained.get(f"{EXTRACTIONS}/{made.json()['id']}").json()
        assert shown["classification"] == found  # stored on the extraction
        assert shown["label"] is None  # the model's answer is not a user's label
    assert usage_of(backplane_app, backplane_tenant, "inference.requests") == before + 4
    misfit = extract(trained, ["invoice total"], classify={"model": MODEL, "n_features": 16})
    assert misfit.status_code == 400, misfit.text  # the model takes 1024 features


def classify_in_bulk(trained: Client) -> None:
    rng = random.Random(7)
    kinds = ["letter", "invoice", "letter"]
    file_ids = []
    for kind in kinds:
        stored = trained.post(
            "/api/files?name=doc.pdf", content=pdf_from_pages([synthetic_text(kind, rng)])
        )
        assert stored.status_code == 201, stored.text
        file_ids.append(stored.json()["id"])
    job = trained.post(JOBS, json={"file_ids": file_ids, "classify": CLASSIFY})
    assert job.status_code == 202, job.text
    run_tasks(trained, timeout=60)
    assert trained.get(f"{JOBS}/{job.json()['id']}").json()["status"] == "succeeded"
    rows = trained.get(EXTRACTIONS, params={"job_id": job.json()["id"]}).json()
    by_file = {row["file_id"]: row["classification"]["label"] for row in rows}
    assert [by_file[f] for f in file_ids] == kinds


def refuse_another_tenant(
    trained: Client, backplane_app: Any, backplane_anonymous_client: Client
) -> None:
    other = seed_tenant(backplane_app, "other")
    pdf = pdf_from_pages([["dear friend thank you kindly"]])
    refused = backplane_anonymous_client.post(
        EXTRACTIONS,
        files={"file": ("doc.pdf", pdf, "application/octet-stream")},
        data={"classify": '{"model": "document_type"}'},
        headers=other.headers,
    )
    assert refused.status_code == 404, refused.text
    assert "document_type" in refused.text
    # nor label A's extractions
    mine = trained.get(EXTRACTIONS).json()[0]["id"]
    label = backplane_anonymous_client.put(
        f"{EXTRACTIONS}/{mine}/label", json={"label": "x"}, headers=other.headers
    )
    assert label.status_code == 404
    # nor train on A's labelled extractions: B's trainer finds none
    started = backplane_anonymous_client.post(f"/api/models/{MODEL}/train", headers=other.headers)
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 60
    while True:
        run_tasks(trained, timeout=60)
        path = f"/api/models/{MODEL}/training-runs/{started.json()['id']}"
        run = backplane_anonymous_client.get(path, headers=other.headers).json()
        if run["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert run["status"] == "failed", run
    assert "found none" in str(run), run


def test_bad_requests_are_clear_4xx(backplane_client: Client) -> None:
    lines = ["invoice total due"]
    unknown = extract(backplane_client, lines, classify={"model": "no_such_model"})
    assert unknown.status_code == 404, unknown.text
    assert "no_such_model" in unknown.text
    assert backplane_client.get(EXTRACTIONS).json() == []  # nothing stored
    bad = extract(backplane_client, lines, classify={"model": MODEL, "n_features": 0})
    assert bad.status_code == 400, bad.text
    assert "n_features" in bad.text
    job = backplane_client.post(
        JOBS, json={"file_ids": [str(uuid.uuid4())], "classify": {"model": "nope"}}
    )
    assert job.status_code == 404, job.text
    made = extract(backplane_client, lines)
    for body in ({"label": ""}, {"label": "x" * 101}, {}, {"label": 3}):
        answer = backplane_client.put(f"{EXTRACTIONS}/{made.json()['id']}/label", json=body)
        assert answer.status_code == 400, (body, answer.text)
    cleared = backplane_client.put(f"{EXTRACTIONS}/{made.json()['id']}/label", json={"label": None})
    assert cleared.status_code == 200
    assert cleared.json()["label"] is None


def test_training_without_enough_labels_fails_clearly(backplane_client: Client) -> None:
    run = train(backplane_client)
    assert run["status"] == "failed"
    assert "at least two labels" in str(run), run


def refuse_a_spent_quota(
    trained: Client, backplane_app: Any, backplane_tenant: SeededTenant
) -> None:
    used = usage_of(backplane_app, backplane_tenant, "inference.requests")
    set_quota(backplane_app, backplane_tenant, "inference.requests", used, hard=True)
    pages_before = usage_of(backplane_app, backplane_tenant, "documents.pages_processed")
    refused = extract(trained, ["invoice total due"], classify=CLASSIFY)
    assert refused.status_code == 429, refused.text
    assert "inference.requests" in refused.text
    # one transaction: the refused request kept no extraction and no page usage
    assert usage_of(backplane_app, backplane_tenant, "documents.pages_processed") == pages_before
    # a bulk job goes on: its document keeps its text and says why it has no label
    stored = trained.post("/api/files?name=late.pdf", content=pdf_from_pages([["dear friend"]]))
    job = trained.post(JOBS, json={"file_ids": [stored.json()["id"]], "classify": CLASSIFY})
    assert job.status_code == 202, job.text
    run_tasks(trained, timeout=60)
    assert trained.get(f"{JOBS}/{job.json()['id']}").json()["status"] == "succeeded"
    [row] = trained.get(EXTRACTIONS, params={"job_id": job.json()["id"]}).json()
    assert row["status"] == "done"
    assert "label" not in row["classification"]
    assert "inference.requests" in row["classification"]["error"]
