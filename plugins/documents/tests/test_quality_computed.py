"""The validation report of a document, and computed fields batched through one model call."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import msgspec
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper

from backplane_documents.computed import ComputedError, fill_computed, parse_computed
from backplane_documents.quality import report


class Out(msgspec.Struct):
    content: bytes
    media_type: str
    pages: int


def test_report_of_a_good_document() -> None:
    pdf = Out(b"%PDF-1.7 ...", "application/pdf", 2)
    got = report(
        row={"name": "Ada", "amount": "3", "colour": "red"},
        declared={"name": True, "amount": True, "note": False, "score": True},
        computed=["score"],
        rendered=pdf,
    )
    assert got.ok
    assert (got.missing, got.unset, got.unknown, got.problems) == ([], ["note"], ["colour"], [])
    assert (got.pages, got.size, got.media_type) == (2, 12, "application/pdf")
    assert got.sha256 == hashlib.sha256(pdf.content).hexdigest()


def test_report_of_a_failed_row_and_of_a_suspicious_output() -> None:
    failed = report(row={"amount": ""}, declared={"name": True, "amount": True}, error="bad")
    assert not failed.ok
    assert (failed.missing, failed.errors, failed.sha256) == (["amount", "name"], ["bad"], None)
    odd = report(
        row={},
        declared={},
        rendered=Out(b"<html>", "application/pdf", 0),
        max_pages=5,
        max_bytes=3,
    )
    assert not odd.ok
    assert odd.problems == [
        "the output does not start as a application/pdf file does",
        "the document has no page",
        "6 bytes, above the limit of 3",
    ]
    big = report(row={}, declared={}, rendered=Out(b"%PDF-", "application/pdf", 9), max_pages=5)
    assert big.problems == ["9 pages, above the limit of 5"]


def linear_model() -> bytes:
    """score = x @ [2, 3] + 1, and a 2-column output (for column selection)."""
    weights = helper.make_tensor("W", TensorProto.FLOAT, [2, 1], [2.0, 3.0])
    pair = helper.make_tensor("P", TensorProto.FLOAT, [2, 2], [1.0, 0.0, 0.0, 1.0])
    bias = helper.make_tensor("B", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["XW"]),
            helper.make_node("Add", ["XW", "B"], ["score"]),
            helper.make_node("MatMul", ["X", "P"], ["both"]),
        ],
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1]),
            helper.make_tensor_value_info("both", TensorProto.FLOAT, [None, 2]),
        ],
        [weights, pair, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


class Runner:
    """An ``infer`` over a real onnxruntime session that counts its calls."""

    def __init__(self) -> None:
        self.session = onnxruntime.InferenceSession(linear_model())
        self.calls: list[tuple[str, int]] = []

    async def __call__(
        self, model: str, inputs: dict[str, Any], version: str | None
    ) -> Mapping[str, Any]:
        if model != "linear":
            raise LookupError(f"no model {model!r}")
        [(name, batch)] = inputs.items()
        if name != "X":
            raise ValueError(f"unknown input {name!r}")
        self.calls.append((model, len(batch)))
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, {name: batch}), strict=True))


async def test_computed_fields_are_filled_with_one_model_call_per_field() -> None:
    specs = parse_computed(
        {
            "score": {"model": "linear", "input": "X", "inputs": ["a", "b"], "output": "score"},
            "second": {
                "model": "linear",
                "input": "X",
                "inputs": ["a", "b"],
                "output": "both",
                "column": 1,
            },
        }
    )
    rows: list[dict[str, Any] | None] = [
        {"a": "1", "b": "2"},
        {"a": 0.5, "b": 4},
        {"a": "x", "b": "1"},
        {"b": "1"},
        None,
        {"a": "nan", "b": 1},
    ]
    runner = Runner()
    errors = await fill_computed(rows, specs, runner)
    assert runner.calls == [("linear", 2), ("linear", 2)]  # batched: one call per field
    assert rows[0] == {"a": "1", "b": "2", "score": 9.0, "second": 2.0}
    assert rows[1] == {"a": 0.5, "b": 4, "score": 14.0, "second": 4.0}
    assert errors[:2] == [None, None]
    assert (
        errors[2] == "computed field 'score': its input 'a' is not a number "
        "(could not convert string to float: 'x')"
    )
    assert errors[3] == "computed field 'score': its input 'a' is missing"
    assert errors[4] is None
    assert (
        errors[5] == "computed field 'score': its input 'a' is not a number (not a finite number)"
    )


async def test_a_failing_model_call_fails_the_rows_it_was_for() -> None:
    runner = Runner()
    rows: list[dict[str, Any] | None] = [{"a": 1, "b": 2}, {"a": 3, "b": 4}]
    specs = parse_computed({"s": {"model": "nope", "inputs": ["a", "b"], "output": "score"}})
    errors = await fill_computed(rows, specs, runner)
    assert errors == ["computed field 's' (model nope): no model 'nope'"] * 2
    specs = parse_computed(
        {"s": {"model": "linear", "input": "X", "inputs": ["a", "b"], "output": "both"}}
    )
    errors = await fill_computed(rows, specs, runner)
    assert errors[0] == (
        "computed field 's' (model linear): output 'both' has 2 values per row: name a column"
    )
    specs = parse_computed(
        {"s": {"model": "linear", "input": "X", "inputs": ["a", "b"], "output": "missing"}}
    )
    errors = await fill_computed(rows, specs, runner)
    assert errors[0] == "computed field 's' (model linear): no output 'missing'"


def test_bad_declarations_are_refused_by_name() -> None:
    with pytest.raises(ComputedError, match="computed field 'x'"):
        parse_computed({"x": {"model": "m", "inputs": [], "output": "y"}})
    with pytest.raises(ComputedError, match="'x' reads 'y', which is computed too"):
        parse_computed(
            {
                "x": {"model": "m", "inputs": ["y"], "output": "o"},
                "y": {"model": "m", "inputs": ["a"], "output": "o"},
            }
        )
    with pytest.raises(ComputedError, match="unknown field"):
        parse_computed({"x": {"model": "m", "inputs": ["a"], "output": "o", "code": "rm -rf"}})
