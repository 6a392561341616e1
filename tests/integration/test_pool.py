"""Issue 15 item 1: no request path holds two pooled connections; a full pool answers 503.

An outside probe sent 16 concurrent ``GET /api/me`` with one JWT: every one held the request's
connection and asked for a second (``memberships_of``), the pool (5 + 10) ran dry, all 16
answered 500 after 30 s and every other tenant waited behind them. Each test runs on SQLite and
on PostgreSQL as the application role.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.app import create_app
from backplane.loading import load_plugins
from tests.app_helpers import pool_connection_taken
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import PASSWORD, Seeded, seed_tenant

ONE_CONNECTION = {
    "BACKPLANE_DB__POOL_SIZE": "1",
    "BACKPLANE_DB__MAX_OVERFLOW": "0",
    "BACKPLANE_DB__MAINTENANCE_POOL_SIZE": "1",
    "BACKPLANE_DB__MAINTENANCE_MAX_OVERFLOW": "0",
    "BACKPLANE_DB__POOL_TIMEOUT_S": "2",
}


def login(client: TestClient[Litestar], tenant: Seeded) -> dict[str, Any]:
    response = client.post("/api/auth/login", json={"email": tenant.email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    pair: dict[str, Any] = response.json()
    return pair


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_sixteen_concurrent_me_with_one_token_all_answer(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    """The probe's case, with the default pool: 16 at once, each answered 200, promptly."""
    headers = bearer(login(dual_client, dual_tenant_a)["access_token"])
    dual_client.get("/api/me", headers=headers)  # warm: the first request starts identity

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(
            pool.map(lambda _: dual_client.get("/api/me", headers=headers).status_code, range(16))
        )
    assert statuses == [200] * 16
    assert time.monotonic() - started < 15  # not the 30 s pool stall


@pytest.fixture
def one_connection_client(data_dir: Path, db_env: dict[str, str]) -> Iterator[TestClient[Litestar]]:
    """An app whose pools hold one connection each: a path that holds two of one pool waits
    for itself and answers 503 after ``db.pool_timeout_s``."""
    plugins = load_plugins(make_settings(data_dir, {**db_env, **ONE_CONNECTION}))
    migrate(plugins)
    with TestClient(create_app(plugins.settings, plugins=plugins)) as client:
        client.app.state.seeded = seed_tenant(plugins, "acme")
        yield client


def test_every_identity_path_works_with_one_connection_per_pool(
    one_connection_client: TestClient[Litestar],
) -> None:
    """Login, refresh, switch-tenant, me, tenant creation and the list routes each hold at most
    one connection of a pool at a time (with two they would wait for themselves: 503)."""
    client = one_connection_client
    tenant: Seeded = client.app.state.seeded
    pair = login(client, tenant)
    token = bearer(pair["access_token"])
    created = client.post("/api/tenants", json={"slug": "acme-two"}, headers=token)
    assert created.status_code == 201, created.text
    switched = client.post("/api/auth/switch-tenant", json={"tenant": "acme-two"}, headers=token)
    assert switched.status_code == 200, switched.text
    refreshed = client.post(
        "/api/auth/refresh", json={"refresh_token": switched.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    token = bearer(refreshed.json()["access_token"])  # switching revoked the first one
    me = client.get("/api/me", headers=token)
    assert me.status_code == 200, me.text
    assert {m["tenant_slug"] for m in me.json()["memberships"]} == {"acme", "acme-two"}
    for path in (
        "/api/tenant/members",
        "/api/tenant/plugins",
        "/api/apikeys",
        "/api/models",
        "/api/billing/usage",
        "/api/billing/subscription",
        "/api/billing/webhooks",
    ):
        for headers in (tenant.headers, token):
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.status_code, response.text)


def test_a_full_pool_answers_503_with_retry_after_then_recovers(
    one_connection_client: TestClient[Litestar],
) -> None:
    """While the only connection is taken, a request waits ``db.pool_timeout_s`` and gets 503
    with ``Retry-After`` (not a 500, not an endless wait); afterwards requests work again."""
    client = one_connection_client
    tenant: Seeded = client.app.state.seeded
    assert client.get("/api/apikeys", headers=tenant.headers).status_code == 200
    with pool_connection_taken(client):
        started = time.monotonic()
        response = client.get("/api/apikeys", headers=tenant.headers)
        waited = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert "busy" in response.json()["detail"]
    assert 1.5 < waited < 10
    assert client.get("/api/apikeys", headers=tenant.headers).status_code == 200
