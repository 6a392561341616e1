"""Issue 18: what a third-party plugin author and a newcomer meet of the public API.

The public permission guard, the OpenAPI security schemes that let ``/schema`` authorize, the
memberships ``/api/me`` shows to an API key, aware datetimes on SQLite as on PostgreSQL, and the
version and distribution of a plugin installed editable.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select
from stevedore import ExtensionManager

import backplane
from backplane.db.engine import create_engine, create_sessionmaker
from backplane.identity.models import RevokedAccessToken
from backplane.loading import _declaring_distributions, load_plugins
from backplane.plugins import PluginSet
from tests.cli import run_cli
from tests.conftest import make_settings
from tests.identity_helpers import PASSWORD, Seeded, seed_tenant

NOTES = "/api/kitchen_sink/notes"


def login(client: TestClient[Litestar], tenant: Seeded) -> str:
    response = client.post("/api/auth/login", json={"email": tenant.email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


# --- the permission guard -------------------------------------------------------------------


def test_requires_is_public_documented_and_the_kernels_guard() -> None:
    from backplane.identity import auth

    assert "requires" in backplane.__all__
    assert backplane.requires is auth.requires
    assert "guards=[requires(" in (backplane.requires.__doc__ or "")
    assert backplane.Principal.has.__doc__


def test_a_plugin_route_guarded_with_requires(
    migrated: PluginSet, client: TestClient[Litestar]
) -> None:
    """kitchen_sink's POST notes needs ``kitchen_sink.notes.write``, which viewers lack."""
    viewer = seed_tenant(migrated, "acme", key_role="viewer")
    refused = client.post(NOTES, json={"body": "no"}, headers=viewer.headers)
    assert refused.status_code == 403
    assert "kitchen_sink.notes.write" in refused.json()["detail"]
    assert client.get(NOTES, headers=viewer.headers).status_code == 200
    owner = seed_tenant(migrated, "globex")
    assert client.post(NOTES, json={"body": "yes"}, headers=owner.headers).status_code == 201


# --- OpenAPI security schemes ---------------------------------------------------------------


def _credential_headers(scheme: dict[str, Any], credential: str) -> dict[str, str]:
    """A request's headers as a client (Swagger UI) builds them from ``scheme``."""
    if scheme["type"] == "apiKey":
        return {scheme["name"]: credential}
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    return {"Authorization": f"Bearer {credential}"}


def test_openapi_declares_security_and_requests_built_from_it_work(
    client: TestClient[Litestar], tenant_a: Seeded
) -> None:
    document = client.get("/schema/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert set(schemes) == {"ApiKey", "AccessToken"}
    assert schemes["AccessToken"]["bearerFormat"] == "JWT"

    me = document["paths"]["/api/me"]["get"]
    names = [name for requirement in me["security"] for name in requirement]
    assert names == ["ApiKey", "AccessToken"]
    credentials = {"ApiKey": tenant_a.api_key, "AccessToken": login(client, tenant_a)}
    for name in names:
        headers = _credential_headers(schemes[name], credentials[name])
        response = client.get("/api/me", headers=headers)
        assert response.status_code == 200, (name, response.text)
        assert response.json()["user_id"] == str(tenant_a.user_id)


def _example_url(path: str, operation: dict[str, Any]) -> str:
    """``path`` with a value of the right type for each path parameter."""
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            schema = parameter["schema"]
            value = {"integer": "1"}.get(schema.get("type"), "x")
            if schema.get("format") == "uuid":
                value = "00000000-0000-4000-8000-000000000001"
            path = path.replace("{" + parameter["name"] + "}", value)
    return path


def test_openapi_security_on_every_guarded_operation_and_no_public_one(
    client: TestClient[Litestar],
) -> None:
    """What the document says matches what the server does: an operation without
    ``security`` answers without a credential, every other one is refused (401)."""
    paths = client.get("/schema/openapi.json").json()["paths"]
    public = {
        (method.upper(), path)
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "security" not in operation
    }
    assert public == {
        ("POST", "/api/auth/login"),
        ("POST", "/api/auth/refresh"),
        # account mail flows: the mailed link's token is the credential
        ("POST", "/api/auth/password-reset"),
        ("GET", "/api/auth/password-reset/complete"),
        ("POST", "/api/auth/password-reset/complete"),
        ("GET", "/api/auth/invites/accept"),
        ("POST", "/api/auth/invites/accept"),
        ("GET", "/api/auth/verify-email"),
        ("POST", "/api/auth/verify-email"),
        ("GET", "/.well-known/jwks.json"),
        ("GET", "/health/live"),
        ("GET", "/health/ready"),
        ("GET", "/v2/health/live"),
        ("GET", "/v2/health/ready"),
        # a signed download URL: the signature in the query is the credential (403 without)
        ("GET", "/api/files/{file_id}/signed"),
        ("HEAD", "/api/files/{file_id}/signed"),
        # kitchen_sink's, registered with register(..., public=True)
        ("GET", "/api/kitchen_sink/signup"),
        ("GET", "/api/kitchen_sink/track/{token}"),
        # the education plugin's xAPI record store: About is public by the specification
        ("GET", "/xapi/about"),
        ("HEAD", "/xapi/about"),
        # the marketing plugin's tracking: opaque random tokens are the credential (open pixel,
        # click redirect, unsubscribe page and RFC 8058 one-click POST); bounce intake checks the
        # tenant's webhook secret itself
        ("GET", "/api/marketing/t/{tenant_id}/o/{token}"),
        ("GET", "/api/marketing/t/{tenant_id}/c/{token}/{link}"),
        ("GET", "/api/marketing/t/{tenant_id}/u/{token}"),
        ("POST", "/api/marketing/t/{tenant_id}/u/{token}"),
        ("POST", "/api/marketing/t/{tenant_id}/bounces"),
        ("POST", "/api/marketing/t/{tenant_id}/bounces/dsn"),
        # its automation messages' unsubscribe page and one-click POST (the token is the
        # credential)
        ("GET", "/api/marketing/t/{tenant_id}/au/{token}"),
        ("POST", "/api/marketing/t/{tenant_id}/au/{token}"),
        # its hosted signup forms (anyone may see and submit them; rate-limited, honeypot) and
        # the double opt-in confirmation (the mailed token is the credential)
        ("GET", "/api/marketing/f/{tenant_id}/{public_form_id}"),
        ("POST", "/api/marketing/f/{tenant_id}/{public_form_id}"),
        ("POST", "/api/marketing/f/{tenant_id}/{public_form_id}/submissions"),
        ("GET", "/api/marketing/f/{tenant_id}/confirm/{token}"),
        ("POST", "/api/marketing/f/{tenant_id}/confirm/{token}"),
        # the marketplace's federation: the signed catalog of opted-in listings, its key and
        # their artifacts (trust comes from the signatures; see the marketplace README)
        ("GET", "/api/marketplace/federation/key"),
        ("GET", "/api/marketplace/federation/catalog"),
        ("GET", "/api/marketplace/federation/artifacts/{sha256}"),
    }
    for path, operations in paths.items():
        for method, operation in operations.items():
            if "security" not in operation:
                continue
            assert operation["security"] == [{"ApiKey": []}, {"AccessToken": []}], path
            answer = client.request(method.upper(), _example_url(path, operation))
            assert answer.status_code == 401, (method, path, answer.status_code)


# --- /api/me ---------------------------------------------------------------------------------


def test_me_lists_the_memberships_with_a_token_and_with_the_owners_api_key(
    migrated: PluginSet, client: TestClient[Litestar], tenant_a: Seeded
) -> None:
    token = login(client, tenant_a)
    second = client.post(
        "/api/tenants",
        json={"slug": "acme-two", "name": "Acme two"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert second.status_code == 201, second.text
    by_token = client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()
    by_key = client.get("/api/me", headers=tenant_a.headers).json()
    assert by_key["authenticated_by"] == "api_key"
    assert {m["tenant_slug"] for m in by_key["memberships"]} == {"acme", "acme-two"}
    assert by_key["memberships"] == by_token["memberships"]


# --- aware datetimes --------------------------------------------------------------------------


def test_datetimes_read_back_aware_in_utc(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    """The same key shows the same instants, with their zone, when created and when listed."""
    dual_client.headers.update(dual_tenant_a.headers)
    created = dual_client.post("/api/apikeys", json={"name": "dated", "expires_in_days": 3})
    assert created.status_code == 201, created.text
    listed = {k["id"]: k for k in dual_client.get("/api/apikeys").json()}
    key = listed[created.json()["id"]]
    assert key["expires_at"] == created.json()["expires_at"]
    for moment in (key["expires_at"], key["created_at"]):
        assert datetime.fromisoformat(moment).utcoffset() == timedelta(0), moment


def test_sqlite_stores_another_zone_as_the_same_instant(migrated: PluginSet) -> None:
    """An aware value in another zone was stored as its wall-clock time, hours off."""
    moment = datetime(2030, 1, 2, 12, 0, tzinfo=timezone(timedelta(hours=5)))

    async def round_trip() -> list[datetime]:
        engine = create_engine(migrated.settings)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                session.add(RevokedAccessToken(jti="zone-probe", expires_at=moment))
            async with create_sessionmaker(engine)() as session:
                found = await session.scalars(
                    select(RevokedAccessToken.expires_at).where(
                        RevokedAccessToken.expires_at > datetime(2030, 1, 2, 6, 59, tzinfo=UTC)
                    )
                )
                return list(found)
        finally:
            await engine.dispose()

    (stored,) = asyncio.run(round_trip())
    assert stored == moment
    assert stored.tzinfo is UTC


# --- an editable plugin's distribution ------------------------------------------------------

EDITABLE_PLUGIN = """
from backplane import PluginInfo
plugin = PluginInfo(name="editable_probe")
"""


def _install_editable(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``pip install -e`` leaves: metadata with the entry point in one directory, the
    code in the project's own (on ``sys.path`` through a ``.pth`` file), and a RECORD that lists
    no package file, so nothing maps the package back to its distribution."""
    site, project = root / "site", root / "project"
    info = site / "bp_editable_probe-0.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bp-editable-probe\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(
        "[backplane.plugins]\neditable_probe = bp_editable_probe.plugin\n"
    )
    (info / "RECORD").write_text(
        "bp_editable_probe.pth,,\nbp_editable_probe-0.3.dist-info/RECORD,,\n"
    )
    package = project / "bp_editable_probe"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(EDITABLE_PLUGIN)
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "bp_editable_probe", raising=False)
    monkeypatch.delitem(sys.modules, "bp_editable_probe.plugin", raising=False)
    # stevedore lists a group's entry points once per process
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})
    _declaring_distributions.cache_clear()


@pytest.fixture
def editable_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    _install_editable(tmp_path, monkeypatch)
    yield
    _declaring_distributions.cache_clear()


@pytest.mark.usefixtures("editable_plugin")
def test_an_editable_plugin_has_its_version_and_distribution(data_dir: Path) -> None:
    plugins = load_plugins(make_settings(data_dir, {"BACKPLANE_PLUGINS": "editable_probe"}))
    record = plugins.records["editable_probe"]
    assert record.status.value == "loaded", record.reason
    assert (record.distribution, record.version) == ("bp-editable-probe", "0.3")

    env = {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_PLUGINS": "editable_probe"}
    result = run_cli("plugins", "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    listed = {r["name"]: r for r in json.loads(result.stdout)}["editable_probe"]
    assert (listed["distribution"], listed["version"]) == ("bp-editable-probe", "0.3")


def test_a_wheel_installed_plugin_keeps_its_version_and_distribution(data_dir: Path) -> None:
    records = load_plugins(make_settings(data_dir)).records
    assert (records["kitchen_sink"].distribution, records["kitchen_sink"].version) == (
        "backplane-sample-kitchen-sink",
        "0.1.0",
    )
    broken = records["broken_import"]  # skipped on import: still named after its distribution
    assert broken.distribution == "backplane-sample-broken-import"
    assert broken.version is not None
