"""``kernel.models.expose_artifact`` / ``withdraw``: a plugin makes a stored artifact one of a
tenant's models under a name the tenant chose, called through V2 like an upload (and metered
like one), listed with its source, and withdrawn again; other tenants never see it."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane import RegistryError
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
            "bought_iris", report, source="marketplace", description="from a plugin"
        )
        with pytest.raises(RegistryError) as taken:
            await kernel.models.expose_artifact(
                "bought_iris", report, source="marketplace", version=version
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
    assert [m["source"] for m in models if m["name"] == "bought_iris"] == ["marketplace"]
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
        await kernel.models.expose_artifact(name, report, source="marketplace")
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
