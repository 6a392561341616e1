"""The real ``tritonclient[http]`` against ``backplane serve``: metadata, readiness, and
inference with binary and JSON tensors, with outputs equal to scikit-learn's."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from backplane.models import example_models, resource
from tests.cli import run_cli, serving

pytestmark = pytest.mark.slow  # a real `backplane serve` process


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    data = tmp_path_factory.mktemp("v2") / "var"
    env = {"BACKPLANE_DATA_DIR": str(data), "BACKPLANE_PLUGINS": "kitchen_sink"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    created = run_cli("tenants", "create", "acme", "--owner-email", "a@acme.org", "--json", env=env)
    key = json.loads(created.stdout)["api_key"]
    with serving(env, data.parent / "serve.log", ready="/v2/health/ready") as running:
        yield running.base.removeprefix("http://"), {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(resource("expected.npz").read_bytes())) as npz:
        return {key: npz[key] for key in npz.files}


# tritonclient adds its own headers to the dict it is given: every call gets a fresh copy.


def test_server_and_model_metadata(server: tuple[str, dict[str, str]]) -> None:
    url, auth = server
    client = triton.InferenceServerClient(url=url)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.get_server_metadata(headers=dict(auth))["name"] == "backplane"
    with pytest.raises(InferenceServerException):
        client.get_server_metadata()  # no credentials
    for model in example_models():
        assert client.is_model_ready(model.name, headers=dict(auth))
        metadata = client.get_model_metadata(model.name, headers=dict(auth))
        assert [i["name"] for i in metadata["inputs"]] == [i.name for i in model.inputs]
        assert [o["name"] for o in metadata["outputs"]] == [o.name for o in model.outputs]
        assert metadata["inputs"][0]["shape"] == [-1, *model.inputs[0].shape[1:]]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("name", [m.name for m in example_models()])
def test_outputs_equal_scikit_learn(
    server: tuple[str, dict[str, str]], expected: dict[str, np.ndarray], name: str, binary: bool
) -> None:
    url, auth = server
    model = next(m for m in example_models() if m.name == name)
    rows = expected[f"{name}__input"]
    tensor = triton.InferInput(model.inputs[0].name, list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    wanted = [triton.InferRequestedOutput(o.name, binary_data=binary) for o in model.outputs]
    result = triton.InferenceServerClient(url=url).infer(
        name, [tensor], outputs=wanted, headers=dict(auth)
    )
    for output in model.outputs:
        got = result.as_numpy(output.name)
        want = expected[f"{name}__{output.name}"]
        if np.issubdtype(want.dtype, np.integer):
            assert np.array_equal(got, want)
        else:
            assert np.allclose(got, want, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(want).max()))


def test_a_plugin_shipped_model_is_served(server: tuple[str, dict[str, str]]) -> None:
    url, auth = server
    values = np.array([[1.5], [-2.0], [0.25]], dtype=np.float32)
    tensor = triton.InferInput("x", [3, 1], "FP32")
    tensor.set_data_from_numpy(values)
    result = triton.InferenceServerClient(url=url).infer(
        "kitchen_sink_double", [tensor], headers=dict(auth)
    )
    assert np.array_equal(result.as_numpy("y"), values * 2)


def test_errors_are_json_with_an_error_field(server: tuple[str, dict[str, str]]) -> None:
    url, auth = server
    base = f"http://{url}/v2/models"
    missing = httpx.get(f"{base}/no_such_model", headers=dict(auth))
    assert missing.status_code == 404
    assert "no_such_model" in missing.json()["error"]
    wrong_type = httpx.post(
        f"{base}/iris_classifier/infer",
        headers=dict(auth),
        json={
            "inputs": [
                {"name": "float_input", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4]}
            ]
        },
    )
    assert wrong_type.status_code == 400
    assert "FP32" in wrong_type.json()["error"]
    wrong_shape = httpx.post(
        f"{base}/iris_classifier/infer",
        headers=dict(auth),
        json={
            "inputs": [
                {"name": "float_input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}
            ]
        },
    )
    assert wrong_shape.status_code == 400
    assert httpx.post(f"{base}/iris_classifier/infer", json={}).status_code == 401
