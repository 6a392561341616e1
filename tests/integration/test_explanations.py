"""``parameters: {"explain": true}`` on V2: occlusion contributions of each feature, computed on
the ONNX model through the kernel's runtime, metered as the rows that ran, refused for inputs
that are not one 2-D table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient
from skl2onnx import to_onnx
from sklearn.linear_model import LinearRegression, LogisticRegression

from backplane.app import create_app
from backplane.loading import load_plugins
from backplane.testing import SeededTenant
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import seed_tenant

WEIGHTS = np.array([3.0, -2.0, 0.5, 0.0])


def linear_data(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(300, 4)).astype(np.float32)
    return features, features @ WEIGHTS + 1.0


def graph_onnx(inputs: int, rank: int) -> bytes:
    """``Y = A (+ B)``: one input of ``rank`` dimensions, or two."""
    from onnx import TensorProto, helper

    dims: list[Any] = ["N", *([2] * (rank - 1))]
    names = ["A", "B"][:inputs]
    node = helper.make_node("Add" if inputs == 2 else "Relu", names, ["Y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n in names],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, dims)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def regression_onnx() -> bytes:
    features, target = linear_data()
    model = LinearRegression().fit(features, target)
    return bytes(to_onnx(model, features[:1]).SerializeToString())


def classifier_onnx() -> bytes:
    features, target = linear_data()
    model = LogisticRegression(C=100.0).fit(features, (target > 1.0).astype(np.int64))
    options = {id(model): {"zipmap": False}}
    return bytes(to_onnx(model, features[:1], options=options).SerializeToString())


@pytest.fixture
def stack(data_dir: Path) -> Iterator[tuple[TestClient[Any], SeededTenant]]:
    env = {
        "BACKPLANE_PLUGINS": "",
        "BACKPLANE_INFERENCE__METERING_OVERLAP_S": "0",  # usage committed before each answer
        "BACKPLANE_INFERENCE__EXPLAIN_MAX_ROWS": "50",
    }
    plugins = load_plugins(make_settings(data_dir, env))
    migrate(plugins)
    tenant = seed_tenant(plugins, "acme")
    with TestClient(create_app(plugins.settings, plugins=plugins)) as client:
        for name, data in (("linear", regression_onnx()), ("classes", classifier_onnx())):
            files = {"file": ("m.onnx", data, "application/octet-stream")}
            made = client.post(
                "/api/models", files=files, data={"name": name}, headers=tenant.headers
            )
            assert made.status_code == 201, made.text
        yield client, tenant


def infer(
    client: TestClient[Any], tenant: SeededTenant, model: str, rows: np.ndarray, **params: Any
) -> Any:
    body = {
        "parameters": params,
        "inputs": [
            {
                "name": "X",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.ravel().tolist(),
            }
        ],
    }
    return client.post(f"/v2/models/{model}/infer", json=body, headers=tenant.headers)


def outputs(answer: Any) -> dict[str, np.ndarray]:
    assert answer.status_code == 200, answer.text
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in answer.json()["outputs"]}


def test_contributions_of_a_linear_model_are_its_weights_times_the_features(
    stack: tuple[TestClient[Any], SeededTenant],
) -> None:
    client, tenant = stack
    rows = np.array([[1.0, 1.0, 1.0, 1.0], [2.0, -1.0, 0.0, 5.0]], np.float32)
    answer = infer(client, tenant, "linear", rows, explain=True, explain_baseline=0.0)
    found = outputs(answer)
    assert answer.json()["parameters"] == {
        "explain_method": "occlusion",
        "explain_baseline": "parameter",
    }
    (name,) = [n for n in found if not n.endswith(".contributions")]
    plain = outputs(infer(client, tenant, "linear", rows))
    np.testing.assert_allclose(found[name], plain[name], rtol=1e-6)  # same answer as without
    contributions = found[f"{name}.contributions"]
    assert contributions.shape == (2, 4, 1)
    np.testing.assert_allclose(contributions[..., 0], rows * WEIGHTS, atol=1e-3)
    # an uploaded version has no training means: the baseline is zero
    default = infer(client, tenant, "linear", rows, explain=True)
    assert default.json()["parameters"]["explain_baseline"] == "zero"
    # metered as what ran: 2 rows, then 2 x (4 + 1) twice
    meters = {
        m["meter"]: m
        for m in client.get("/api/billing/usage", headers=tenant.headers).json()["meters"]
    }
    assert meters["inference.rows"]["value"] == 2 + 10 + 10
    assert meters["inference.requests"]["value"] == 3


def test_a_classifier_s_contributions_have_the_weights_sign_and_rank(
    stack: tuple[TestClient[Any], SeededTenant],
) -> None:
    client, tenant = stack
    # near the boundary (not saturated): 3 * 0.04 > 2 * 0.03 > 0.5 * 0.04 > 0 * 0.05
    row = np.array([[0.04, 0.03, 0.04, 0.05]], np.float32)
    answer = infer(client, tenant, "classes", row, explain=True)
    found = outputs(answer)
    assert "label.contributions" not in found  # labels are not a quantity to take apart
    positive = found["probabilities.contributions"][0, :, 1]
    assert positive[0] > 0 > positive[1]
    assert positive[2] > 0
    assert abs(positive[3]) < abs(positive[2]) / 5  # its weight is (nearly) nothing
    order = np.argsort(-np.abs(positive))
    assert list(order) == [0, 1, 2, 3]
    np.testing.assert_allclose(found["probabilities.contributions"][0].sum(axis=1), 0, atol=1e-5)


def test_requests_that_cannot_be_explained_are_refused_with_the_reason(
    stack: tuple[TestClient[Any], SeededTenant],
) -> None:
    client, tenant = stack
    rows = np.ones((12, 4), np.float32)  # 12 x 5 = 60 rows to run > explain_max_rows (50)
    too_many = infer(client, tenant, "linear", rows, explain=True)
    assert too_many.status_code == 400
    assert "inference.explain_max_rows (50)" in too_many.json()["error"]
    not_bool = infer(client, tenant, "linear", rows[:1], explain="yes")
    assert not_bool.status_code == 400
    assert "'explain' must be a boolean" in not_bool.json()["error"]
    bad_baseline = infer(client, tenant, "linear", rows[:1], explain=True, explain_baseline="0")
    assert bad_baseline.status_code == 400
    # models whose inputs are not one table: two inputs, or one 3-D input
    for name, inputs in (
        ("pair", [("A", [1, 2]), ("B", [1, 2])]),
        ("cube", [("A", [1, 2, 2])]),
    ):
        files = {"file": ("m.onnx", graph_onnx(len(inputs), len(inputs[0][1])), "x/y")}
        made = client.post("/api/models", files=files, data={"name": name}, headers=tenant.headers)
        assert made.status_code == 201, made.text
        body = {
            "parameters": {"explain": True},
            "inputs": [
                {"name": n, "shape": shape, "datatype": "FP32", "data": [0.0] * int(np.prod(shape))}
                for n, shape in inputs
            ],
        }
        refused = client.post(f"/v2/models/{name}/infer", json=body, headers=tenant.headers)
        assert refused.status_code == 400, refused.text
        assert "explanations need a tabular model" in refused.json()["error"]
        del body["parameters"]
        assert (
            client.post(f"/v2/models/{name}/infer", json=body, headers=tenant.headers).status_code
            == 200
        )
    # unexplained requests to the same model are unaffected
    assert infer(client, tenant, "linear", rows).status_code == 200


def test_explanations_run_past_the_batch_size_and_count_against_the_quota(
    stack: tuple[TestClient[Any], SeededTenant], data_dir: Path
) -> None:
    """8 rows of 4 features run 40 rows: more than the model's batch size (32), fine; the
    quota on ``inference.rows`` (50) sees those 40, so an explanation is refused where the plain
    request of the same rows would still fit."""
    from tests.cli import run_cli

    client, tenant = stack
    env = {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_PLUGINS": ""}
    capped = run_cli("quotas", "set", "acme", "inference.rows", "50", env=env)
    assert capped.returncode == 0, capped.stderr
    rows = np.linspace(-1, 1, 32, dtype=np.float32).reshape(8, 4)
    found = outputs(infer(client, tenant, "linear", rows, explain=True, explain_baseline=0.0))
    (name,) = [n for n in found if n.endswith(".contributions")]
    np.testing.assert_allclose(found[name][..., 0], rows * WEIGHTS, atol=1e-3)
    refused = infer(client, tenant, "linear", rows[:4], explain=True)  # 40 + 20 > 50
    assert refused.status_code == 429, refused.text
    assert infer(client, tenant, "linear", rows).status_code == 200  # 40 + 8 <= 50
