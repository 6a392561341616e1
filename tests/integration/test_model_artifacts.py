"""``kernel.models.check_artifact`` / ``try_artifact``: plugins validate an ONNX artifact by the
upload rules and run it once, without registering a model or metering the tenant."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import numpy as np
import pytest
from litestar import Litestar

from backplane import ArtifactMissingError, ModelRejected
from backplane.testing import run_in_tenant, usage_of
from tests.identity_helpers import Seeded

IRIS = (files("backplane.models") / "iris_classifier.onnx").read_bytes()


def test_an_artifact_is_checked_stored_and_tried(app: Litestar, tenant_a: Seeded) -> None:
    with np.load(str(files("backplane.models") / "expected.npz")) as expected:
        rows = expected["iris_classifier__input"][:3]
        labels = expected["iris_classifier__label"][:3]

    async def work(kernel: Any) -> Any:
        report = await kernel.models.check_artifact(IRIS)
        run = await kernel.models.try_artifact(report.sha256, {"float_input": rows.tolist()})
        with pytest.raises(ValueError, match="float_input"):
            await kernel.models.try_artifact(report.sha256, {"float_input": [[1.0, 2.0]]})
        with pytest.raises(ArtifactMissingError):
            await kernel.models.try_artifact("0" * 64, {"float_input": rows.tolist()})
        with pytest.raises(ModelRejected) as rejected:
            await kernel.models.check_artifact(b"not an onnx model")
        assert rejected.value.status_code == 422
        return report, run

    report, run = run_in_tenant(app, tenant_a.slug, work, plugin="kitchen_sink")
    assert report.size == len(IRIS)
    assert [t["name"] for t in report.inputs] == ["float_input"]
    assert report.inputs[0]["shape"] == [-1, 4]
    assert report.dynamic_batch
    assert run.outputs["label"].tolist() == labels.tolist()
    assert run.elapsed_ns > 0
    # Neither registered nor metered.
    assert usage_of(app, tenant_a.slug, "inference.requests") == 0


def test_a_stored_artifact_s_bytes_are_read_back_verified(app: Litestar, tenant_a: Seeded) -> None:
    async def work(kernel: Any) -> Any:
        report = await kernel.models.check_artifact(IRIS)
        data = await kernel.models.artifact_bytes(report.sha256)
        with pytest.raises(ArtifactMissingError):
            await kernel.models.artifact_bytes("0" * 64)
        return data

    assert run_in_tenant(app, tenant_a.slug, work, plugin="kitchen_sink") == IRIS
