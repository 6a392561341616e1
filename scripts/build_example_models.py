"""Train and export the example ONNX models shipped in ``backplane.models``.

Run by hand from the repository root, then commit what it writes::

    .venv/bin/python scripts/build_example_models.py

It needs scikit-learn, skl2onnx, onnx and onnxruntime (test dependencies, not runtime ones) and
nothing from the network: the classifier is trained on scikit-learn's bundled iris data, the
regressor on its bundled diabetes data and the wide MLP on seeded synthetic data.

Outputs, in ``core/src/backplane/models/``:

- ``iris_classifier.onnx``: LogisticRegression on iris; ``float_input`` FP32 [N, 4] to ``label``
  INT64 [N] and ``probabilities`` FP32 [N, 3] (``zipmap=False``: plain tensors).
- ``diabetes_regressor.onnx``: Ridge on diabetes; ``float_input`` FP32 [N, 10] to ``variable``
  FP32 [N, 1].
- ``wide_mlp.onnx``: MLPRegressor with hidden layers (512, 512) on 256 synthetic features;
  ``float_input`` FP32 [N, 256] to ``variable`` FP32 [N, 1]; about 1.6 MB of float32 weights, big
  enough that batching requests pays off.
- ``expected.npz``: for each model ``<name>__input`` (32 rows, float32) and
  ``<name>__<output>`` (scikit-learn's own predictions for those rows).
- ``manifest.json``: name, version, file, sha256, inputs and outputs (name, datatype, shape with
  -1 for the dynamic batch dimension) and the library versions used.

Seeds are fixed and BLAS is limited to one thread, so a rebuild on the same machine and library
versions reproduces the same files byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import skl2onnx
import sklearn
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_diabetes, load_iris, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPRegressor
from threadpoolctl import threadpool_limits

OUT = Path(__file__).resolve().parent.parent / "core" / "src" / "backplane" / "models"
ROWS = 32  # rows of test inputs and expected outputs stored per model
OPSET = 17  # ai.onnx opset; the ai.onnx.ml domain gets what skl2onnx pairs with it
SEED = 20240601

ONNX_TO_V2 = {
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.INT32: "INT32",
}


def _convert(model: Any, n_features: int, options: dict[Any, Any] | None = None) -> bytes:
    onx = to_onnx(
        model,
        initial_types=[("float_input", FloatTensorType([None, n_features]))],
        target_opset=OPSET,
        options=options,
    )
    # Wipe what would make the bytes differ between otherwise identical builds.
    onx.producer_version = skl2onnx.__version__
    onx.doc_string = ""
    # skl2onnx may list the same opset twice; keep one entry per domain.
    opsets = {op.domain: op.version for op in onx.opset_import}
    del onx.opset_import[:]
    for domain, version in opsets.items():
        onx.opset_import.append(onnx.helper.make_opsetid(domain, version))
    data: bytes = onx.SerializeToString()
    return data


def _signature(data: bytes) -> dict[str, list[dict[str, Any]]]:
    model = onnx.load_from_string(data)

    def tensors(values: Any) -> list[dict[str, Any]]:
        out = []
        for value in values:
            ttype = value.type.tensor_type
            shape = [d.dim_value if d.HasField("dim_value") else -1 for d in ttype.shape.dim]
            out.append(
                {"name": value.name, "datatype": ONNX_TO_V2[ttype.elem_type], "shape": shape}
            )
        return out

    return {"inputs": tensors(model.graph.input), "outputs": tensors(model.graph.output)}


def _check_with_onnxruntime(
    name: str, data: bytes, x: np.ndarray, expected: dict[str, np.ndarray]
) -> None:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    got = session.run(list(expected), {"float_input": x})
    for (out_name, want), have in zip(expected.items(), got, strict=True):
        if want.dtype.kind == "i":
            np.testing.assert_array_equal(have, want, err_msg=f"{name}.{out_name}")
        else:
            scale = float(np.max(np.abs(want))) or 1.0
            err = float(np.max(np.abs(have.astype(np.float64) - want)))
            print(f"  {name}.{out_name}: max abs error {err:.3g} (scale {scale:.3g})")
            np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-5 * scale)


def _rows(x: np.ndarray) -> np.ndarray:
    """Pick ROWS rows spread over the data set, as float32 (what the ONNX model takes)."""
    idx = np.linspace(0, len(x) - 1, ROWS).round().astype(int)
    return np.ascontiguousarray(x[idx], dtype=np.float32)


def build() -> None:
    rng = np.random.RandomState(SEED)
    arrays: dict[str, np.ndarray] = {}
    entries: list[dict[str, Any]] = []

    def add(name: str, description: str, data: bytes, x: np.ndarray, outs: dict[str, Any]) -> None:
        expected = {k: np.asarray(v) for k, v in outs.items()}
        _check_with_onnxruntime(name, data, x, expected)
        path = OUT / f"{name}.onnx"
        path.write_bytes(data)
        arrays[f"{name}__input"] = x
        for out_name, value in expected.items():
            arrays[f"{name}__{out_name}"] = value
        entries.append(
            {
                "name": name,
                "version": "1",
                "description": description,
                "file": path.name,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                **_signature(data),
            }
        )
        print(f"  wrote {path.name}: {len(data)} bytes")

    # (a) classifier: iris, 4 features, 3 classes.
    iris_x, iris_y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=1000, random_state=SEED).fit(iris_x, iris_y)
    x = _rows(iris_x)
    add(
        "iris_classifier",
        "LogisticRegression on the iris data set (3 classes)",
        _convert(clf, 4, {id(clf): {"zipmap": False}}),
        x,
        {
            "label": clf.predict(x.astype(np.float64)).astype(np.int64),
            "probabilities": clf.predict_proba(x.astype(np.float64)),
        },
    )

    # (b) regressor: diabetes, 10 features.
    dia_x, dia_y = load_diabetes(return_X_y=True)
    reg = Ridge(alpha=0.1).fit(dia_x, dia_y)
    x = _rows(dia_x)
    add(
        "diabetes_regressor",
        "Ridge regression on the diabetes data set",
        _convert(reg, 10),
        x,
        {"variable": reg.predict(x.astype(np.float64)).reshape(-1, 1)},
    )

    # (c) wide MLP: 256 synthetic features, hidden layers (512, 512).
    wide_x, wide_y = make_regression(
        n_samples=1024, n_features=256, n_informative=64, noise=0.1, random_state=rng
    )
    wide_y = wide_y / np.std(wide_y)
    mlp = MLPRegressor(
        hidden_layer_sizes=(512, 512), max_iter=15, batch_size=128, random_state=SEED
    )
    with warnings.catch_warnings():  # 15 epochs is on purpose: a real model, built in seconds
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(wide_x, wide_y)
    x = _rows(wide_x)
    add(
        "wide_mlp",
        "MLPRegressor (256 -> 512 -> 512 -> 1) on synthetic data; big enough that batching pays",
        _convert(mlp, 256),
        x,
        {"variable": mlp.predict(x.astype(np.float64)).reshape(-1, 1)},
    )

    buf_path = OUT / "expected.npz"
    np.savez_compressed(buf_path, **arrays)
    manifest = {
        "generated_by": "scripts/build_example_models.py",
        "versions": {
            "scikit-learn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__,
            "onnx": onnx.__version__,
            "numpy": np.__version__,
        },
        "opset": OPSET,
        "test_rows": ROWS,
        "expected": buf_path.name,
        "models": entries,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"  wrote {buf_path.name}: {buf_path.stat().st_size} bytes, manifest.json")


def build_benchmark_mlp(
    path: Path, features: int, hidden: int, layers: int = 2, outputs: int = 1
) -> None:
    """An MLPRegressor (``features`` -> ``layers`` x ``hidden`` -> ``outputs``), for the benchmark.

    Too big to ship (MBs to tens of MB at the sizes the benchmark uses) and not needed by any
    test, so it is built on demand, trained for a few epochs on seeded synthetic data like
    ``wide_mlp``, checked against scikit-learn's own predictions, and written to ``path``. The
    benchmark uses two shapes: one whose single-row run costs more than a request's fixed cost
    (so that batching can pay), and one whose run costs less (so that the request is the cost).
    """
    rng = np.random.RandomState(SEED)
    x, y = make_regression(
        n_samples=512,
        n_features=features,
        n_informative=64,
        n_targets=outputs,
        noise=0.1,
        random_state=rng,
    )
    y = y / np.std(y)
    mlp = MLPRegressor(
        hidden_layer_sizes=(hidden,) * layers, max_iter=2, batch_size=128, random_state=SEED
    )
    with warnings.catch_warnings():  # 2 epochs on purpose: a real model, built in seconds
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(x, y)
    rows = _rows(x)
    # skl2onnx reshapes an MLPRegressor's output to [N, 1], so a multi-output one is written
    # as the plain graph it is (MatMul, Add, Relu) from the fitted weights.
    data = _convert(mlp, features) if outputs == 1 else _relu_mlp_graph(mlp, features)
    want = mlp.predict(rows.astype(np.float64)).reshape(len(rows), outputs)
    _check_with_onnxruntime(path.stem, data, rows, {"variable": want})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    print(f"  wrote {path}: {len(data)} bytes")


def _relu_mlp_graph(mlp: MLPRegressor, features: int) -> bytes:
    """A fitted ReLU MLPRegressor as ONNX: ``float_input`` [N, features] -> ``variable``."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights = [], []
    current = "float_input"
    last = len(mlp.coefs_) - 1
    for i, (coef, bias) in enumerate(zip(mlp.coefs_, mlp.intercepts_, strict=True)):
        weights += [
            numpy_helper.from_array(coef.astype(np.float32), f"w{i}"),
            numpy_helper.from_array(bias.astype(np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node("MatMul", [current, f"w{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"b{i}"], ["variable" if i == last else f"a{i}"]),
        ]
        if i != last:
            nodes.append(helper.make_node("Relu", [f"a{i}"], [f"h{i}"]))
            current = f"h{i}"
    graph = helper.make_graph(
        nodes,
        "relu_mlp",
        [helper.make_tensor_value_info("float_input", TensorProto.FLOAT, [None, features])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, mlp.n_outputs_])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--benchmark-mlp",
        type=Path,
        metavar="FILE",
        help="instead of the shipped models, write only the benchmark's wide MLP to FILE",
    )
    parser.add_argument("--features", type=int, default=1024, help="its input width (1024)")
    parser.add_argument("--hidden", type=int, default=4096, help="its hidden width (4096)")
    parser.add_argument("--layers", type=int, default=2, help="its hidden layers (2)")
    parser.add_argument("--outputs", type=int, default=1, help="its output width (1)")
    options = parser.parse_args(argv)
    if options.features < 64 or min(options.hidden, options.layers, options.outputs) < 1:
        parser.error("--features must be >= 64 and --hidden, --layers, --outputs >= 1")
    if options.benchmark_mlp is not None:
        build_benchmark_mlp(
            options.benchmark_mlp, options.features, options.hidden, options.layers, options.outputs
        )
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    with threadpool_limits(limits=1):
        build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
