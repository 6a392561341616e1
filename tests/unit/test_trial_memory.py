"""The upload trial measures the resident memory a model's onnxruntime session adds once
loaded and run (``ValidatedModel.resident_bytes``, ``ArtifactReport.resident_bytes``): the
marketplace shows it on listings as the model's memory figure."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from backplane.inference.validation import validate_onnx

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="VmRSS comes from /proc")


def matmul_model(rows: int, cols: int) -> bytes:
    """x [-1, rows] @ W [rows, cols], W random float32 (kept by the session: no folding)."""
    weights = np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, rows])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, cols])],
        initializer=[numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def test_the_trial_reports_what_the_loaded_session_adds() -> None:
    small = validate_onnx(matmul_model(16, 16))
    weights = 2048 * 4096 * 4  # 32 MiB of weights the session keeps
    large = validate_onnx(matmul_model(2048, 4096))
    assert small.resident_bytes is not None
    assert large.resident_bytes is not None
    assert 0 < small.resident_bytes < weights
    # The weights show, with the session's fixed cost (small's) on top.
    assert large.resident_bytes - small.resident_bytes >= 0.9 * weights
    assert large.resident_bytes < 3 * weights
