"""What a request sends never forges a log line, on SQLite and PostgreSQL.

A security review after issue 15 found ``POST /api/tenants`` writing the requested slug into
the audit log's reason before checking it, and the pool-timeout warning logging the decoded
request path with ``%s``: a newline (``\\n``, ``%0A`` in a path) in either started a second,
forged log line. Request-controlled text is logged with ``repr`` (or checked first).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.app import create_app
from backplane.loading import load_plugins
from tests.app_helpers import pool_connection_taken
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import PASSWORD, Seeded, seed_tenant

FORGED = "INFO:backplane.audit:forged line"


def one_line_each(records: list[logging.LogRecord]) -> bool:
    return all("\n" not in record.getMessage() for record in records)


@pytest.mark.parametrize("slug", ["acme2\n" + FORGED, "acme2\n", "\nacme2"])
def test_a_tenant_slug_with_a_newline_is_refused_before_it_is_logged(
    dual_client: TestClient[Litestar],
    dual_tenant_a: Seeded,
    caplog: pytest.LogCaptureFixture,
    slug: str,
) -> None:
    login = dual_client.post(
        "/api/auth/login", json={"email": dual_tenant_a.email, "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    with caplog.at_level(logging.DEBUG):
        response = dual_client.post("/api/tenants", headers=headers, json={"slug": slug})
    assert response.status_code == 400, response.text
    assert "lower-case letters" in response.json()["detail"]
    assert one_line_each(caplog.records)
    assert FORGED not in caplog.text.splitlines()


def test_a_valid_tenant_slug_is_audited_on_one_line(
    dual_client: TestClient[Litestar],
    dual_tenant_a: Seeded,
    caplog: pytest.LogCaptureFixture,
) -> None:
    login = dual_client.post(
        "/api/auth/login", json={"email": dual_tenant_a.email, "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    with caplog.at_level(logging.INFO, logger="backplane.audit"):
        response = dual_client.post("/api/tenants", headers=headers, json={"slug": "acme2"})
    assert response.status_code == 201, response.text
    assert any("creates tenant 'acme2'" in r.getMessage() for r in caplog.records)


@pytest.fixture
def one_connection_client(data_dir: Path, db_env: dict[str, str]) -> Iterator[TestClient[Litestar]]:
    """An app whose application pool holds one connection, waited for at most 2 s."""
    env = {
        **db_env,
        "BACKPLANE_DB__POOL_SIZE": "1",
        "BACKPLANE_DB__MAX_OVERFLOW": "0",
        "BACKPLANE_DB__POOL_TIMEOUT_S": "2",
    }
    plugins = load_plugins(make_settings(data_dir, env))
    migrate(plugins)
    with TestClient(create_app(plugins.settings, plugins=plugins)) as client:
        client.app.state.seeded = seed_tenant(plugins, "acme")
        yield client


def test_a_path_with_a_newline_is_logged_on_one_line_when_the_pool_is_full(
    one_connection_client: TestClient[Litestar], caplog: pytest.LogCaptureFixture
) -> None:
    client = one_connection_client
    tenant: Seeded = client.app.state.seeded
    path = "/api/billing/plans/basic%0A" + FORGED.replace(":", "%3A").replace(" ", "%20")
    assert client.get(path, headers=tenant.headers).status_code == 404  # the route answers
    busy_log = caplog.at_level(logging.WARNING, logger="backplane.db.busy")
    with pool_connection_taken(client), busy_log:
        response = client.get(path, headers=tenant.headers)
    assert response.status_code == 503, response.text
    warnings = [r for r in caplog.records if r.name == "backplane.db.busy"]
    assert len(warnings) == 1
    assert "\\n" in warnings[0].getMessage()  # the newline is there, escaped
    assert one_line_each(warnings)
