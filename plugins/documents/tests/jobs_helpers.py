"""Shared by the bulk job tests: a small HTML template, data files, and reading a job's ZIP."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

TEMPLATES = "/api/documents/templates"
JOBS = "/api/documents/jobs"
CARD = "<h1>{{ name }}</h1><p>{{ amount }} {{ note or '' }}</p>"
CARD_FIELDS: list[dict[str, Any]] = [
    {"name": "name", "max_length": 50},
    {"name": "amount", "type": "number", "minimum": 0},
    {"name": "note", "required": False},
]


def make_template(
    client: TestClient[Litestar],
    name: str = "card",
    source: str = CARD,
    fields: list[dict[str, Any]] | None = None,
) -> str:
    created = client.post(
        TEMPLATES,
        json={"name": name, "engine": "html", "source": source, "fields": fields or CARD_FIELDS},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def csv_rows(count: int, *, bad_every: int = 0) -> bytes:
    lines = ["name,amount,note"]
    for i in range(1, count + 1):
        amount = "lots" if bad_every and i % bad_every == 0 else f"{i}.5"
        lines.append(f"Person {i},{amount},n{i}")
    return ("\n".join(lines) + "\n").encode()


def start_job(
    client: TestClient[Litestar], template_id: str, data: bytes, **params: Any
) -> dict[str, Any]:
    params.setdefault("format", "csv")
    started = client.post(f"{TEMPLATES}/{template_id}/jobs", content=data, params=params)
    assert started.status_code == 202, started.text
    return dict(started.json())


def job_zip(client: TestClient[Litestar], job_id: str) -> zipfile.ZipFile:
    answer = client.get(f"{JOBS}/{job_id}/zip")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    assert archive.testzip() is None
    return archive


def manifest(archive: zipfile.ZipFile) -> list[dict[str, Any]]:
    return [json.loads(line) for line in archive.read("manifest.jsonl").splitlines()]


def linear_onnx(weights: tuple[float, float] = (2.0, 3.0), bias: float = 1.0) -> bytes:
    """A real ONNX model built here: ``score = X @ weights + bias`` for ``X`` of shape [n, 2]
    (dynamic batch), so a computed field has an exact expected value."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["XW"]),
            helper.make_node("Add", ["XW", "B"], ["score"]),
        ],
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])],
        [
            helper.make_tensor("W", TensorProto.FLOAT, [2, 1], list(weights)),
            helper.make_tensor("B", TensorProto.FLOAT, [1], [bias]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
