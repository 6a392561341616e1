"""The benchmark's V2 codec reads what servers answer (not timed; not in the main test suite).

Run with ``python -m pytest bench/inference``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from v2client import (
    HEADER_LENGTH,
    V2ResponseError,
    binary_request,
    decode_response,
    json_request,
)


def test_json_response_flat_and_nested() -> None:
    flat = {
        "model_name": "wide_mlp",
        "outputs": [{"name": "variable", "datatype": "FP32", "shape": [2, 1], "data": [1.5, -2]}],
    }
    nested = {
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [2, 2], "data": [[1, 2], [3, 4]]}
        ]
    }
    out = decode_response(json.dumps(flat).encode(), None)
    assert out["variable"].dtype == np.float32
    assert out["variable"].tolist() == [[1.5], [-2.0]]
    assert decode_response(json.dumps(nested).encode(), None)["label"].tolist() == [[1, 2], [3, 4]]


def test_binary_response() -> None:
    values = np.array([[0.25], [4.0]], np.float32)
    raw = values.tobytes()
    header = json.dumps(
        {
            "outputs": [
                {
                    "name": "variable",
                    "datatype": "FP32",
                    "shape": [2, 1],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()
    out = decode_response(header + raw, str(len(header)))
    np.testing.assert_array_equal(out["variable"], values)
    with pytest.raises(V2ResponseError):
        decode_response(header + raw[:-1], str(len(header)))  # truncated
    with pytest.raises(V2ResponseError):
        decode_response(header + raw, str(len(header) + len(raw) + 1))


def test_errors_are_refused() -> None:
    with pytest.raises(V2ResponseError):
        decode_response(b'{"error": "model not found"}', None)
    with pytest.raises(V2ResponseError):
        decode_response(b"<html>", None)
    bad_count = {"outputs": [{"name": "x", "datatype": "FP32", "shape": [3], "data": [1, 2]}]}
    with pytest.raises(V2ResponseError):
        decode_response(json.dumps(bad_count).encode(), None)


def test_requests_round_trip_float32() -> None:
    array = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    body = json_request("float_input", array)
    sent = json.loads(body.content)["inputs"][0]
    assert sent["shape"] == [2, 4]
    assert sent["datatype"] == "FP32"
    np.testing.assert_array_equal(np.asarray(sent["data"], np.float32).reshape(2, 4), array)

    binary = binary_request("float_input", array, ["variable"])
    length = int(binary.headers[HEADER_LENGTH])
    header = json.loads(binary.content[:length])
    assert header["inputs"][0]["parameters"]["binary_data_size"] == array.nbytes
    assert header["outputs"] == [{"name": "variable", "parameters": {"binary_data": True}}]
    np.testing.assert_array_equal(
        np.frombuffer(binary.content[length:], np.float32).reshape(2, 4), array
    )
