"""The example models shipped in ``backplane.models`` reproduce scikit-learn's predictions."""

from __future__ import annotations

import hashlib
import io
import json

import msgspec
import numpy as np
import pytest

from backplane import models

ort = pytest.importorskip("onnxruntime")

NAMES = ["iris_classifier", "diabetes_regressor", "wide_mlp"]


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    data = models.resource(models.manifest().expected).read_bytes()
    with np.load(io.BytesIO(data)) as npz:
        return {key: npz[key] for key in npz.files}


def _session(name: str):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        models.read_model(name), options, providers=["CPUExecutionProvider"]
    )


def test_manifest_lists_the_three_models():
    assert [m.name for m in models.example_models()] == NAMES
    assert all(m.version == "1" for m in models.example_models())
    raw = json.loads(models.resource("manifest.json").read_text())
    assert raw["versions"]["scikit-learn"]


@pytest.mark.parametrize("name", NAMES)
def test_manifest_sha256_and_size_match_the_files(name):
    entry = models.example_model(name)
    data = models.resource(entry.file).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry.sha256
    assert len(data) == entry.bytes


def test_models_are_small():
    assert models.example_model("wide_mlp").bytes < 2_000_000
    assert models.example_model("iris_classifier").bytes < 10_000
    assert models.example_model("diabetes_regressor").bytes < 10_000


@pytest.mark.parametrize("name", NAMES)
def test_signature_matches_manifest(name):
    entry = models.example_model(name)
    session = _session(name)
    v2 = {"tensor(float)": "FP32", "tensor(int64)": "INT64"}
    for specs, args in (
        (entry.inputs, session.get_inputs()),
        (entry.outputs, session.get_outputs()),
    ):
        assert [s.name for s in specs] == [a.name for a in args]
        assert [s.datatype for s in specs] == [v2[a.type] for a in args]
        for spec, arg in zip(specs, args, strict=True):
            assert spec.shape[0] == -1  # dynamic batch dimension
            assert not isinstance(arg.shape[0], int)
            assert list(spec.shape[1:]) == list(arg.shape[1:])


@pytest.mark.parametrize("name", NAMES)
def test_onnxruntime_matches_scikit_learn(name, expected):
    entry = models.example_model(name)
    x = expected[f"{name}__input"]
    assert x.dtype == np.float32
    assert x.shape == (models.manifest().test_rows, entry.inputs[0].shape[1])
    outputs = [o.name for o in entry.outputs]
    got = _session(name).run(outputs, {"float_input": x})
    for out_name, have in zip(outputs, got, strict=True):
        want = expected[f"{name}__{out_name}"]
        assert have.shape == want.shape
        if want.dtype.kind == "i":  # class labels: exact
            assert have.dtype == np.int64
            np.testing.assert_array_equal(have, want)
        else:  # float32 model vs float64 scikit-learn
            assert have.dtype == np.float32
            scale = float(np.max(np.abs(want)))
            np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-5 * scale)


def test_classifier_probabilities_are_a_distribution(expected):
    x = expected["iris_classifier__input"]
    label, proba = _session("iris_classifier").run(None, {"float_input": x})
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(proba.argmax(axis=1), label)


def test_wide_mlp_takes_any_batch_size(expected):
    session = _session("wide_mlp")
    x = expected["wide_mlp__input"]
    (one,) = session.run(None, {"float_input": x[:1]})
    (many,) = session.run(None, {"float_input": np.concatenate([x, x])})
    assert one.shape == (1, 1)
    assert many.shape == (64, 1)
    np.testing.assert_allclose(many[:1], one, rtol=1e-5, atol=1e-6)


def test_read_model_rejects_a_tampered_manifest(monkeypatch):
    entry = msgspec.structs.replace(models.example_model("diabetes_regressor"), sha256="0" * 64)
    bad = msgspec.structs.replace(models.manifest(), models=(entry,))
    monkeypatch.setattr(models, "manifest", lambda: bad)
    with pytest.raises(ValueError, match="sha256"):
        models.read_model("diabetes_regressor")
    assert models.read_model("diabetes_regressor", verify=False)
    with pytest.raises(KeyError):
        models.example_model("iris_classifier")
