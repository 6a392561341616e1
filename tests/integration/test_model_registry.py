"""Tenant-uploaded models: upload through ``/api/models``, serve through V2, and isolation.

Runs on SQLite and on real PostgreSQL: tenant A's private model is invisible to tenant B (the
same 404 as a model that does not exist) on every route, and two tenants may each own a model
of the same name without seeing each other's.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.app import create_app
from backplane.loading import load_plugins
from backplane.models import resource
from backplane.testing import SeededTenant
from tests.app_helpers import rails
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.fixtures.hostile_onnx import make_corpus as corpus
from tests.identity_helpers import seed_tenant

IRIS = resource("iris_classifier.onnx").read_bytes()
DIABETES = resource("diabetes_regressor.onnx").read_bytes()


class Stack:
    def __init__(self, client: TestClient[Litestar], a: SeededTenant, b: SeededTenant) -> None:
        self.client, self.a, self.b = client, a, b

    def call(self, who: SeededTenant, method: str, url: str, **kwargs: Any) -> Any:
        return self.client.request(method, url, headers=who.headers, **kwargs)

    def upload(self, who: SeededTenant, name: str, data: bytes, **fields: str) -> Any:
        return self.call(
            who,
            "POST",
            "/api/models",
            files={"file": ("model.onnx", data, "application/octet-stream")},
            data={"name": name, **fields},
        )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Stack]:
    env = {"BACKPLANE_PLUGINS": "kitchen_sink"}
    if request.param == "postgres":
        env["BACKPLANE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrate(plugins)
    a, b = seed_tenant(plugins, "acme"), seed_tenant(plugins, "globex")
    with TestClient(create_app(settings, plugins=plugins)) as client:
        yield Stack(client, a, b)


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(resource("expected.npz").read_bytes())) as npz:
        return {key: npz[key] for key in npz.files}


def infer_body(rows: np.ndarray) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "float_input",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.flatten().tolist(),
            }
        ]
    }


def output(response: Any, name: str) -> np.ndarray:
    assert response.status_code == 200, response.text
    found = {o["name"]: o for o in response.json()["outputs"]}[name]
    return np.array(found["data"]).reshape(found["shape"])


def test_upload_serves_the_model_and_other_tenants_never_see_it(
    stack: Stack, expected: dict[str, np.ndarray]
) -> None:
    created = stack.upload(stack.a, "house-model", IRIS, description="iris, privately")
    assert created.status_code == 201, created.text
    row = created.json()
    assert (row["name"], row["version"], row["source"]) == ("house-model", "1", "upload")
    assert row["signature"]["inputs"][0]["name"] == "float_input"

    rows = expected["iris_classifier__input"]
    probabilities = output(
        stack.call(stack.a, "POST", "/v2/models/house-model/infer", json=infer_body(rows)),
        "probabilities",
    )
    np.testing.assert_allclose(probabilities, expected["iris_classifier__probabilities"], atol=1e-5)
    metadata = stack.call(stack.a, "GET", "/v2/models/house-model")
    assert metadata.status_code == 200
    assert metadata.json()["versions"] == ["1"]

    # Tenant B: every route answers exactly as for a model that does not exist.
    for method, url, body in [
        ("GET", "/v2/models/house-model", None),
        ("GET", "/v2/models/house-model/ready", None),
        ("GET", "/v2/models/house-model/versions/1", None),
        ("GET", "/v2/models/house-model/stats", None),
        ("POST", "/v2/models/house-model/infer", infer_body(rows)),
        ("POST", "/v2/models/house-model/versions/1/infer", infer_body(rows)),
    ]:
        answer = stack.call(stack.b, method, url, json=body)
        missing = stack.call(
            stack.b, method, url.replace("house-model", "no-such-model"), json=body
        )
        assert answer.status_code == missing.status_code == 404, (url, answer.text)
        assert answer.json() == {"error": "unknown model 'house-model'"}
    assert stack.call(stack.b, "GET", "/api/models/house-model").status_code == 404
    assert stack.call(stack.b, "DELETE", "/api/models/house-model").status_code == 404
    listed = stack.call(stack.b, "GET", "/api/models").json()
    assert "house-model" not in {m["name"] for m in listed}
    assert {m["name"] for m in listed} >= {"iris_classifier", "wide_mlp"}  # shipped: everyone

    # B may own a model of the same name; each tenant keeps calling its own.
    assert stack.upload(stack.b, "house-model", DIABETES).status_code == 201
    b_rows = expected["diabetes_regressor__input"]
    b_out = output(
        stack.call(stack.b, "POST", "/v2/models/house-model/infer", json=infer_body(b_rows)),
        "variable",
    )
    np.testing.assert_allclose(b_out, expected["diabetes_regressor__variable"], rtol=1e-4)
    a_again = output(
        stack.call(stack.a, "POST", "/v2/models/house-model/infer", json=infer_body(rows)),
        "probabilities",
    )
    np.testing.assert_allclose(a_again, expected["iris_classifier__probabilities"], atol=1e-5)

    # Statistics: each tenant sees only its own traffic.
    a_stats = stack.call(stack.a, "GET", "/v2/models/house-model/stats").json()
    b_stats = stack.call(stack.b, "GET", "/v2/models/house-model/stats").json()
    assert a_stats["model_stats"][0]["inference_stats"]["success"]["count"] == 2
    assert a_stats["model_stats"][0]["inference_count"] == 2 * len(rows)
    assert b_stats["model_stats"][0]["inference_stats"]["success"]["count"] == 1

    # Deleting is the owner's own business: B deleting its model leaves A's.
    assert stack.call(stack.b, "DELETE", "/api/models/house-model").status_code == 204
    assert stack.call(stack.b, "GET", "/v2/models/house-model").status_code == 404
    assert stack.call(stack.a, "GET", "/v2/models/house-model/ready").status_code == 200


def test_versions_are_immutable_and_names_checked(stack: Stack) -> None:
    assert stack.upload(stack.a, "scorer", IRIS).json()["version"] == "1"
    assert stack.upload(stack.a, "scorer", DIABETES).json()["version"] == "2"
    again = stack.upload(stack.a, "scorer", IRIS, version="2")
    assert again.status_code == 409
    assert "immutable" in again.json()["detail"]
    assert stack.call(stack.a, "GET", "/v2/models/scorer").json()["versions"] == ["1", "2"]
    assert stack.call(stack.a, "GET", "/v2/models/scorer/versions/1/ready").status_code == 200
    # the latest version answers unversioned requests
    latest = stack.call(stack.a, "GET", "/v2/models/scorer").json()
    assert latest["inputs"][0]["shape"] == [-1, 10]

    shipped = stack.upload(stack.a, "wide_mlp", IRIS)
    assert shipped.status_code == 409
    bad_name = stack.upload(stack.a, "../evil", IRIS)
    assert bad_name.status_code == 422
    assert "model name" in bad_name.json()["detail"]

    assert stack.call(stack.a, "DELETE", "/api/models/scorer/versions/2").status_code == 204
    assert stack.call(stack.a, "GET", "/v2/models/scorer").json()["versions"] == ["1"]


def test_only_managers_upload(stack: Stack) -> None:
    """A member-role API key may call models but not upload them."""
    member = seed_tenant(rails(stack.client.app).plugins, "initech", key_role="member")
    refused = stack.upload(member, "x", IRIS)
    assert refused.status_code == 403
    assert "models.manage" in refused.text
    assert stack.call(member, "GET", "/v2/models/iris_classifier/ready").status_code == 200


HOSTILE = {
    "external data ../": lambda: corpus.external_initializer("../../etc/passwd"),
    "external data absolute": lambda: corpus.external_initializer("/etc/passwd"),
    "external data relative": lambda: corpus.external_initializer("weights.bin"),
    "external data in a subgraph": corpus.external_in_subgraph,
    "external data in a function": corpus.external_in_function,
    "ConstantOfShape bomb": corpus.constant_of_shape_bomb,
    "custom op domain": corpus.custom_op_domain,
    "deep nesting": lambda: corpus.deep_nesting(12),
    "random bytes": lambda: np.random.default_rng(7).bytes(4096),
    "truncated model": lambda: IRIS[: len(IRIS) // 2],
    "empty file": lambda: b"",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_uploads_are_refused_and_the_server_stays_healthy(
    kind: str, data_dir: Path
) -> None:
    settings = make_settings(data_dir, {"BACKPLANE_PLUGINS": "kitchen_sink"})
    plugins = load_plugins(settings)
    migrate(plugins)
    owner = seed_tenant(plugins, "acme")
    with TestClient(create_app(settings, plugins=plugins)) as client:
        answer = client.post(
            "/api/models",
            headers=owner.headers,
            files={"file": ("m.onnx", HOSTILE[kind]())},
            data={"name": "hostile"},
        )
        assert answer.status_code in (413, 422), answer.text
        body = answer.json()
        assert body["detail"].startswith(body["rule"] + ": ")  # names the rule broken
        assert client.get("/v2/health/ready").status_code == 200
        assert client.get("/api/models/hostile", headers=owner.headers).status_code == 404
        assert not list((data_dir / "models").glob("*/*.onnx"))  # nothing stored
        rows = np.zeros((1, 4), dtype=np.float32)
        served = client.post(
            "/v2/models/iris_classifier/infer", headers=owner.headers, json=infer_body(rows)
        )
        assert served.status_code == 200


def test_an_upload_over_the_size_limit_is_413(data_dir: Path) -> None:
    settings = make_settings(
        data_dir,
        {"BACKPLANE_PLUGINS": "kitchen_sink", "BACKPLANE_INFERENCE__MAX_UPLOAD_BYTES": "4096"},
    )
    plugins = load_plugins(settings)
    migrate(plugins)
    owner = seed_tenant(plugins, "acme")
    with TestClient(create_app(settings, plugins=plugins)) as client:
        too_big = client.post(
            "/api/models",
            headers=owner.headers,
            files={"file": ("m.onnx", corpus.large_initializer(64 * 1024))},
            data={"name": "big"},
        )
        assert too_big.status_code == 413
        assert "file-too-large" in too_big.text
