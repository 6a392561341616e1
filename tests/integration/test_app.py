"""The application: health, plugin routes and settings injection, OpenAPI, lifecycle hooks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from litestar import Litestar
from litestar.testing import TestClient

from backplane.app import create_app
from backplane.loading import load_plugins
from backplane.secret_key import secret_key
from tests.app_helpers import rails
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import seed_tenant
from tests.unit.test_plugins import EXPECTED_SKIPS


def test_live(client: TestClient[Litestar]) -> None:
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_lists_loaded_and_skipped_plugins(client: TestClient[Litestar]) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == {"status": "ok", "detail": None}
    plugins = {p["name"]: p for p in body["plugins"]}
    assert plugins["core"]["status"] == "loaded"
    assert plugins["kitchen_sink"]["status"] == "loaded"
    for name in EXPECTED_SKIPS:
        assert plugins[name]["status"] == "skipped"
        assert plugins[name]["reason"]


def test_ready_reports_a_plugin_health_problem_as_degraded(
    app: Litestar, client: TestClient[Litestar]
) -> None:
    from bp_sample_kitchen_sink import plugin as kitchen_sink

    kitchen_sink.HEALTH_PROBLEM.append("upstream unreachable")
    try:
        body = client.get("/health/ready").json()
    finally:
        kitchen_sink.HEALTH_PROBLEM.clear()
    assert body["status"] == "degraded"
    sink = next(p for p in body["plugins"] if p["name"] == "kitchen_sink")
    assert sink == {
        "name": "kitchen_sink",
        "status": "unhealthy",
        "version": "0.1.0",
        "reason": "upstream unreachable",
    }


def test_ready_is_503_when_the_database_does_not_answer(data_dir: Path) -> None:
    # Nothing listens on port 9 of the loopback interface.
    settings = make_settings(
        data_dir,
        {
            "BACKPLANE_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
            "BACKPLANE_DB__HEALTH_TIMEOUT_S": "2",
            "BACKPLANE_PLUGINS": "",
        },
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["database"]["status"] == "error"


def test_plugin_routes_are_mounted_under_its_prefix(authed: TestClient[Litestar]) -> None:
    client = authed
    created = client.post("/api/kitchen_sink/notes", json={"body": "first"})
    assert created.status_code == 201, created.text
    assert created.json()["body"] == "first"
    listed = client.get("/api/kitchen_sink/notes")
    assert listed.status_code == 200
    assert [n["body"] for n in listed.json()] == ["first"]


def test_invalid_body_gets_a_400_naming_the_problem(authed: TestClient[Litestar]) -> None:
    response = authed.post("/api/kitchen_sink/notes", json={"text": "wrong field"})
    assert response.status_code == 400
    assert "body" in response.text


@contextlib.contextmanager
def tenant_client(data_dir: Path, env: dict[str, str]) -> Iterator[TestClient[Litestar]]:
    """A client of the migrated app with ``env``, authenticated as tenant ``acme``'s owner."""
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrate(plugins)
    seeded = seed_tenant(plugins, "acme")
    with TestClient(create_app(settings, plugins=plugins)) as client:
        client.headers.update(seeded.headers)
        yield client


def test_plugin_settings_are_injected(data_dir: Path) -> None:
    with tenant_client(data_dir, {"BACKPLANE_PLUGIN__KITCHEN_SINK__GREETING": "bonjour"}) as client:
        assert client.get("/api/kitchen_sink/greeting").json() == {"greeting": "bonjour"}


def test_plugin_limit_setting_is_enforced(data_dir: Path) -> None:
    with tenant_client(data_dir, {"BACKPLANE_PLUGIN__KITCHEN_SINK__MAX_NOTES": "1"}) as client:
        assert client.post("/api/kitchen_sink/notes", json={"body": "a"}).status_code == 201
        refused = client.post("/api/kitchen_sink/notes", json={"body": "b"})
    assert refused.status_code == 400
    assert "at most 1 notes" in refused.text


def test_skipped_plugins_have_no_routes(data_dir: Path) -> None:
    settings = make_settings(data_dir)
    with TestClient(create_app(settings)) as client:
        paths = client.get("/schema/openapi.json").json()["paths"]
    assert not any(p.startswith("/api/bad_settings") for p in paths)
    assert any(p.startswith("/api/kitchen_sink/") for p in paths)


def test_openapi_tags_routes_with_their_plugin(client: TestClient[Litestar]) -> None:
    schema = client.get("/schema/openapi.json").json()
    operations = [
        op
        for path, item in schema["paths"].items()
        if path.startswith("/api/kitchen_sink/")
        for op in item.values()
    ]
    assert operations
    assert all(op["tags"] == ["kitchen_sink"] for op in operations)


def test_schema_ui_is_served_without_any_external_asset(client: TestClient[Litestar]) -> None:
    page = client.get("/schema")
    assert page.status_code == 200
    assert "swagger" in page.text.lower()
    assert "http://" not in page.text
    assert "https://" not in page.text
    script = client.get("/schema/static/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert len(script.content) > 100_000


def test_lifecycle_hooks_run_with_the_app(app: Litestar) -> None:
    from bp_sample_kitchen_sink import plugin as kitchen_sink

    kitchen_sink.EVENTS.clear()
    with TestClient(app):
        assert [event for event, _ in kitchen_sink.EVENTS] == ["startup"]
    assert [event for event, _ in kitchen_sink.EVENTS] == ["startup", "shutdown"]
    for _event, kernel in kitchen_sink.EVENTS:  # each hook gets its own plugin's kernel view
        assert kernel.plugin == "kitchen_sink"
        assert kernel.plugin_settings.greeting == "hello"


def test_secret_is_shared_by_every_app_on_a_data_directory(data_dir: Path) -> None:
    first = create_app(make_settings(data_dir, {"BACKPLANE_PLUGINS": ""}))
    second = create_app(make_settings(data_dir, {"BACKPLANE_PLUGINS": ""}))
    assert secret_key(rails(first).settings) == secret_key(rails(second).settings)
    assert len(secret_key(rails(first).settings)) >= 32
    assert (data_dir / "secret_key").stat().st_mode & 0o777 == 0o600
