"""Upload validation of untrusted ONNX files: the good model passes, the hostile corpus does not.

The corpus is built in the test session from ``tests/fixtures/hostile_onnx/make_corpus.py``;
nothing binary is committed. Static rejections must happen without starting the trial process
(a fixture makes starting it fail the test); the trial tests start it for real.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from backplane.inference import validation
from backplane.inference.validation import (
    RULES,
    ModelRejected,
    ModelSignature,
    TensorSpec,
    ValidationLimits,
    check_static,
    validate_onnx,
)
from tests.fixtures.hostile_onnx import make_corpus as corpus

DEFAULT = ValidationLimits()


@pytest.fixture
def no_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if validation gets as far as starting the trial process."""

    def refuse(data: bytes, limits: ValidationLimits) -> ModelSignature:
        raise AssertionError("the static rules should have rejected this model")

    monkeypatch.setattr(validation, "run_trial", refuse)


def rejection(data: bytes, limits: ValidationLimits = DEFAULT) -> ModelRejected:
    with pytest.raises(ModelRejected) as caught:
        validate_onnx(data, limits)
    exc = caught.value
    assert exc.rule in RULES
    assert exc.message.startswith(f"{exc.rule}: "), exc.message  # the message names the rule
    assert str(exc) == exc.message
    return exc


# --- the good model ---------------------------------------------------------------------------


def test_good_model_passes_with_its_signature() -> None:
    data = corpus.good_model()
    model = validate_onnx(data, ValidationLimits())
    assert model.sha256 == hashlib.sha256(data).hexdigest()
    assert model.size == len(data)
    assert model.ir_version == corpus.IR_VERSION
    assert model.opset_imports == {"ai.onnx": corpus.OPSET}
    assert model.node_count == 4
    assert model.signature == ModelSignature(
        inputs=(TensorSpec("x", "FP32", (-1, 4)),),
        outputs=(TensorSpec("y", "FP32", (-1, 2)), TensorSpec("label", "INT64", (-1,))),
    )
    assert model.dynamic_batch is True
    # the result is plain data the registry can store
    assert msgspec.json.decode(msgspec.json.encode(model), type=type(model)) == model


def test_model_local_functions_are_allowed_unless_disabled(no_trial: None) -> None:
    data = corpus.local_function_model()
    report = check_static(data, DEFAULT)
    assert report.opset_imports == {"ai.onnx": corpus.OPSET, "local.fn": 1}
    assert report.node_count == 2  # the call and the function's body
    exc = rejection(data, ValidationLimits(allow_model_local_functions=False))
    assert exc.rule == "custom-op-domain"
    assert "'local.fn'" in exc.message


def test_nesting_up_to_the_limit_passes_the_static_rules() -> None:
    limits = ValidationLimits(max_nesting_depth=3)
    assert check_static(corpus.deep_nesting(3), limits).node_count == 7
    with pytest.raises(ModelRejected, match="too-deep"):
        check_static(corpus.deep_nesting(4), limits)


# --- the hostile corpus: static rules ---------------------------------------------------------

STATIC_CASES: list[tuple[str, Callable[[], bytes], str, tuple[str, ...]]] = [
    (
        "external ../",
        lambda: corpus.external_initializer("../x"),
        "external-data",
        ("'w'", "'../x'"),
    ),
    (
        "external absolute",
        lambda: corpus.external_initializer("/etc/passwd"),
        "external-data",
        ("'/etc/passwd'",),
    ),
    (
        "external relative",
        lambda: corpus.external_initializer("weights.bin"),
        "external-data",
        ("'weights.bin'",),
    ),
    (
        "external in If branch",
        corpus.external_in_subgraph,
        "external-data",
        ("'branch'", "then_branch", "'hidden_constant'", "'hidden'", "'../secret.bin'"),
    ),
    (
        "external in local function",
        corpus.external_in_function,
        "external-data",
        ("local.fn::Scale", "'fn_k'", "'../../fn.bin'"),
    ),
    (
        "ConstantOfShape bomb",
        corpus.constant_of_shape_bomb,
        "shape-bomb",
        ("'bomb'", "ConstantOfShape", "[1000000, 1000000]", "1000000000000"),
    ),
    ("declared shape bomb", corpus.declared_shape_bomb, "shape-bomb", ("'huge'",)),
    (
        "Expand bomb in subgraph",
        corpus.expand_bomb_in_subgraph,
        "shape-bomb",
        ("then_branch", "'expand'", "'full_shape'"),
    ),
    ("custom op domain", corpus.custom_op_domain, "custom-op-domain", ("'com.evil'",)),
    (
        "custom op in subgraph",
        corpus.custom_op_in_subgraph,
        "custom-op-domain",
        ("then_branch", "'hidden_pwn'", "'com.evil'"),
    ),
    ("deep nesting", lambda: corpus.deep_nesting(12), "too-deep", ("12 subgraphs deep", "'if12'")),
    ("random bytes", corpus.random_bytes, "unparseable", ()),
    ("truncated model", corpus.truncated, "unparseable", ()),
    ("unknown operator", corpus.checker_failure, "checker", ("NoSuchOperator",)),
]


@pytest.mark.parametrize(
    ("build", "rule", "names"),
    [pytest.param(build, rule, names, id=case) for case, build, rule, names in STATIC_CASES],
)
def test_hostile_file_is_rejected_by_its_rule(
    no_trial: None, build: Callable[[], bytes], rule: str, names: tuple[str, ...]
) -> None:
    exc = rejection(build())
    assert exc.rule == rule, exc.message
    assert exc.status_code == 422
    for name in names:
        assert name in exc.message, (name, exc.message)


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_are_unparseable(no_trial: None, seed: int) -> None:
    assert rejection(corpus.random_bytes(size=256 + 997 * seed, seed=seed)).rule == "unparseable"


def test_oversized_file_is_rejected_before_parsing(
    no_trial: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnx

    def parse_nothing(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("parsed a file above the size cap")

    monkeypatch.setattr(onnx, "load_model_from_string", parse_nothing)
    data = corpus.good_model()
    exc = rejection(data, ValidationLimits(max_file_bytes=len(data) - 1))
    assert exc.rule == "file-too-large"
    assert exc.status_code == 413
    assert str(len(data)) in exc.message


def test_initializer_over_the_byte_limit(no_trial: None) -> None:
    data = corpus.large_initializer(64 * 1024)
    exc = rejection(data, ValidationLimits(max_initializer_bytes=32 * 1024))
    assert exc.rule == "initializer-too-large"
    assert "'big_weights'" in exc.message
    assert "65536" in exc.message


def test_too_many_nodes(no_trial: None) -> None:
    exc = rejection(corpus.many_nodes(20), ValidationLimits(max_nodes=10))
    assert exc.rule == "too-many-nodes"
    assert "20 nodes" in exc.message


# --- external data is reported, never followed ------------------------------------------------


@pytest.fixture
def opened_paths() -> Iterator[list[str]]:
    """Paths opened (by Python code, onnx's included) while the fixture is active."""
    seen: list[str] = []
    active = [True]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if active[0] and event == "open" and isinstance(args[0], str | bytes | Path):
            seen.append(str(args[0]))

    sys.addaudithook(hook)  # audit hooks cannot be removed; this one switches itself off
    yield seen
    active[0] = False


@pytest.mark.parametrize("location", ["weights.bin", "../x", "ABSOLUTE"])
def test_external_data_files_are_never_touched(
    no_trial: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    opened_paths: list[str],
    location: str,
) -> None:
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    target = tmp_path / "abs.bin" if location == "ABSOLUTE" else workdir / location
    target.write_bytes(b"\x00" * 8)  # a file that would satisfy the reference
    location = str(target) if location == "ABSOLUTE" else location
    monkeypatch.chdir(workdir)
    data = corpus.external_initializer(location)
    opened_paths.clear()
    exc = rejection(data)
    assert exc.rule == "external-data"
    assert repr(location) in exc.message
    assert not [p for p in opened_paths if (workdir / p).resolve() == target.resolve()]
    assert target.read_bytes() == b"\x00" * 8


# --- the trial process ------------------------------------------------------------------------


def test_trial_timeout_kills_a_model_that_runs_forever() -> None:
    limits = ValidationLimits(trial_timeout_seconds=1.0)
    started = time.monotonic()
    exc = rejection(corpus.slow_loop(), limits)
    assert exc.rule == "trial-timeout"
    assert "1 s" in exc.message
    assert time.monotonic() - started < 15


def test_trial_memory_limit_stops_a_runtime_allocation() -> None:
    # 2^28 float32 = 1 GiB, computed at run time so no static rule can see it
    exc = rejection(
        corpus.runtime_memory_hog(1 << 28), ValidationLimits(trial_memory_bytes=512 << 20)
    )
    assert exc.rule == "trial-memory"
    assert "'hog'" in exc.message


def test_trial_failure_is_reported() -> None:
    exc = rejection(corpus.fails_at_run())
    assert exc.rule == "trial-failed"
    assert "Gather" in exc.message


def test_non_tensor_outputs_are_unsupported() -> None:
    exc = rejection(corpus.sequence_output())
    assert exc.rule == "unsupported-io"
    assert "'seq'" in exc.message


# --- the API's plain-data pieces --------------------------------------------------------------


def test_limits_are_configurable_and_checked_when_decoded() -> None:
    limits = msgspec.convert(
        {"max_nodes": 5, "allowed_domains": ["", "com.microsoft"]}, ValidationLimits
    )
    assert limits.max_nodes == 5
    assert limits.allowed_domains == ("", "com.microsoft")
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"trial_timeout_seconds": 0}, ValidationLimits)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"max_nodez": 5}, ValidationLimits)


def test_rejection_survives_pickling() -> None:
    exc = pickle.loads(pickle.dumps(ModelRejected("checker", "checker: bad")))
    assert (exc.rule, exc.message) == ("checker", "checker: bad")


def test_corpus_script_writes_every_file(tmp_path: Path) -> None:
    written = corpus.write_corpus(tmp_path / "out")
    assert {p.name for p in written} == set(corpus.CORPUS)
    assert all(p.stat().st_size > 0 for p in written)
