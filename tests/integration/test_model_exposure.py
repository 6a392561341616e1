"""``kernel.models.expose_artifact`` / ``withdraw``: a plugin makes a stored artifact one of a
tenant's models under a name the tenant chose, called through V2 like an upload (and metered
like one), listed with its source, and withdrawn again; other tenants never see it."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane import ModelRefused, RegistryError
from backplane.testing import run_in_tenant
from tests.identity_helpers import Seeded
from tests.waiting import wait_for

IRIS = (files("backplane.models") / "iris_classifier.onnx").read_bytes()
ROW = {"name": "float_input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}


def test_an_exposed_artifact_is_the_tenants_model_until_withdrawn(
    client: TestClient[Litestar], tenant_a: Seeded, tenant_b: Seeded
) -> None:
    async def expose(kernel: Any) -> str:
        report = await kernel.models.check_artifact(IRIS)
        version: str = await kernel.models.expose_artifact(
            "bought_iris", report, source="kitchen_sink", description="from a plugin"
        )
        with pytest.raises(RegistryError) as taken:
            await kernel.models.expose_artifact(
                "bought_iris", report, source="kitchen_sink", version=version
            )
        assert taken.value.status_code == 409
        with pytest.raises(ValueError, match="source"):
            await kernel.models.expose_artifact("x", report, source="upload")
        return version

    version = run_in_tenant(client, tenant_a.slug, expose, plugin="kitchen_sink")
    assert version == "1"
    called = client.post(
        "/v2/models/bought_iris/infer", json={"inputs": [ROW]}, headers=tenant_a.headers
    )
    assert called.status_code == 200, called.text
    models = client.get("/api/models", headers=tenant_a.headers).json()
    assert [m["source"] for m in models if m["name"] == "bought_iris"] == ["kitchen_sink"]
    other = client.post(
        "/v2/models/bought_iris/infer", json={"inputs": [ROW]}, headers=tenant_b.headers
    )
    assert other.status_code == 404

    async def withdraw(kernel: Any) -> int:
        removed: int = await kernel.models.withdraw("bought_iris")
        with pytest.raises(RegistryError):
            await kernel.models.withdraw("bought_iris")
        return removed

    assert run_in_tenant(client, tenant_a.slug, withdraw, plugin="kitchen_sink") == 1
    # This app's registry cache learns of another process's change within its bound (2 s).
    wait_for(
        lambda: (
            client.post(
                "/v2/models/bought_iris/infer", json={"inputs": [ROW]}, headers=tenant_a.headers
            ).status_code
            == 404
        ),
        message="the withdrawn model to be gone",
        timeout=10,
    )


def test_a_session_shared_by_the_same_bytes_answers_under_each_callers_name(
    client: TestClient[Litestar], tenant_a: Seeded, tenant_b: Seeded
) -> None:
    """Models of the same bytes share one loaded session, whichever tenant or name loaded it:
    each caller's answers, metadata and statistics still name the caller's own model (never
    the name another tenant gave the same file)."""

    async def expose(kernel: Any) -> str:
        report = await kernel.models.check_artifact(IRIS)
        name = f"iris_of_{kernel.tenant_id.hex[:6]}"
        await kernel.models.expose_artifact(name, report, source="kitchen_sink")
        return name

    first = run_in_tenant(client, tenant_a.slug, expose, plugin="kitchen_sink")
    second = run_in_tenant(client, tenant_b.slug, expose, plugin="kitchen_sink")
    assert first != second
    for tenant, name, calls in ((tenant_a, first, 1), (tenant_b, second, 2)):
        for _ in range(calls):  # tenant A's call loads the session; B's use A's session
            called = client.post(
                f"/v2/models/{name}/infer", json={"inputs": [ROW]}, headers=tenant.headers
            )
            assert called.status_code == 200, called.text
            assert called.json()["model_name"] == name
        metadata = client.get(f"/v2/models/{name}", headers=tenant.headers).json()
        assert metadata["name"] == name
        stats = client.get(f"/v2/models/{name}/stats", headers=tenant.headers).json()
        assert stats["model_stats"][0]["inference_count"] == calls, stats
        assert first not in client.get(f"/v2/models/{second}/stats", headers=tenant_b.headers).text


def test_the_plugin_that_exposed_a_model_may_refuse_to_serve_it(
    client: TestClient[Litestar], tenant_a: Seeded
) -> None:
    """Hook ``model_loading``: asked before an exposed model serves (V2 inference, metadata,
    readiness, ``kernel.models.infer``), once per process and answer lifetime; a refusal is a
    409 naming the reason, and another model of the same bytes is not affected."""
    from bp_sample_kitchen_sink.plugin import EVENTS

    async def expose(kernel: Any) -> None:
        report = await kernel.models.check_artifact(IRIS)
        for name in ("refused_iris", "served_iris"):
            await kernel.models.expose_artifact(name, report, source="kitchen_sink")

    run_in_tenant(client, tenant_a.slug, expose, plugin="kitchen_sink")
    asked = len([e for e in EVENTS if e[0] == "model_loading"])
    for _ in range(3):
        served = client.post(
            "/v2/models/served_iris/infer", json={"inputs": [ROW]}, headers=tenant_a.headers
        )
        assert served.status_code == 200, served.text
    refused = client.post(
        "/v2/models/refused_iris/infer", json={"inputs": [ROW]}, headers=tenant_a.headers
    )
    assert refused.status_code == 409
    assert refused.json()["error"] == (
        "model 'refused_iris' version '1' is refused: the kitchen sink withdrew its licence"
    )
    for path in ("/v2/models/refused_iris", "/v2/models/refused_iris/ready"):
        assert client.get(path, headers=tenant_a.headers).status_code == 409
    # One question per model while the answer is kept (inference.load_check_s).
    calls = [e[1] for e in EVENTS if e[0] == "model_loading"][asked:]
    assert sorted(name for _, name in calls) == ["refused_iris", "served_iris"]
    assert {tenant for tenant, _ in calls} == {tenant_a.tenant_id}

    async def infer(kernel: Any) -> str:
        with pytest.raises(ModelRefused, match="licence"):
            await kernel.models.infer("refused_iris", {"float_input": [ROW["data"]]})
        result = await kernel.models.infer("served_iris", {"float_input": [ROW["data"]]})
        return str(result["label"].tolist())

    assert run_in_tenant(client, tenant_a.slug, infer, plugin="kitchen_sink")
