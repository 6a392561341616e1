"""The identity API end to end: login, tokens, refresh families, API keys, rotation, throttling."""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.app import create_app
from backplane.identity.apikeys import create_api_key
from backplane.identity.keystore import rotate_keyring
from backplane.identity.tokens import TokenService
from backplane.loading import load_plugins
from backplane.plugins import PluginSet
from backplane.secret_key import secret_key
from backplane.testing import TEST_PASSWORD, SeededTenant, seed_tenant
from tests.app_helpers import rails
from tests.conftest import make_settings
from tests.db_helpers import migrate


def login(
    client: TestClient[Litestar],
    email: str,
    password: str = TEST_PASSWORD,
    tenant: str | None = None,
) -> dict[str, str]:
    body = {"email": email, "password": password}
    if tenant:
        body["tenant"] = tenant
    response = client.post("/api/auth/login", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_public_and_protected_routes(client: TestClient[Litestar]) -> None:
    assert client.get("/health/live").status_code == 200
    assert client.get("/.well-known/jwks.json").status_code == 200
    assert client.get("/schema/openapi.json").status_code == 200
    response = client.get("/api/me")
    assert response.status_code == 401
    assert client.get("/api/me", headers={"Authorization": "Basic abc"}).status_code == 401


def test_login_and_me(client: TestClient[Litestar], tenant_a: SeededTenant) -> None:
    tokens = login(client, tenant_a.email.upper())
    assert tokens["token_type"] == "Bearer"
    assert tokens["role"] == "owner"
    me = client.get("/api/me", headers=bearer(tokens["access_token"])).json()
    assert me["user_id"] == str(tenant_a.user_id)
    assert me["tenant_id"] == str(tenant_a.tenant_id)
    assert me["authenticated_by"] == "token"
    assert "tenant.members.manage" in me["permissions"]
    assert [m["tenant_slug"] for m in me["memberships"]] == ["acme"]


def test_access_token_claims_use_the_user_id_not_the_email(
    client: TestClient[Litestar], tenant_a: SeededTenant
) -> None:
    token = login(client, tenant_a.email)["access_token"]
    header, payload, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    assert claims["sub"] == str(tenant_a.user_id)
    assert claims["tid"] == str(tenant_a.tenant_id)
    assert {"iss", "aud", "exp", "iat", "jti"} <= set(claims)
    assert tenant_a.email not in token
    assert json.loads(base64.urlsafe_b64decode(header + "=="))["alg"] == "ES256"


@pytest.mark.parametrize("email", ["owner@acme.example.org", "nobody@acme.example.org"])
def test_bad_credentials_get_the_same_401(
    client: TestClient[Litestar], tenant_a: SeededTenant, email: str
) -> None:
    response = client.post("/api/auth/login", json={"email": email, "password": "wrong" * 4})
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid email or password"


def test_tampered_expired_wrong_audience_and_alg_none_tokens_get_401(
    app: Litestar, client: TestClient[Litestar], tenant_a: SeededTenant
) -> None:
    token = login(client, tenant_a.email)["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged_claims = b64(
        json.dumps({**claims, "tid": "00000000-0000-0000-0000-000000000000"}).encode()
    )
    identity = rails(app).identity.identity
    tokens: TokenService = identity.tokens
    expired = tokens.issue_access_token(
        user_id=str(tenant_a.user_id),
        tenant_id=str(tenant_a.tenant_id),
        now=int(time.time()) - 3600,
        extra={"role": "owner"},
    )
    other_audience = TokenService(
        issuer=tokens.issuer, audience="someone-else", keyring=tokens.keyring
    ).issue_access_token(
        user_id=str(tenant_a.user_id), tenant_id=str(tenant_a.tenant_id), extra={"role": "owner"}
    )
    none_header = b64(
        json.dumps(
            {
                "alg": "none",
                "kid": json.loads(base64.urlsafe_b64decode(header + "=="))["kid"],
                "typ": "at+jwt",
            }
        ).encode()
    )
    bad = {
        "tampered payload": f"{header}.{forged_claims}.{signature}",
        "tampered signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        "expired": expired.token,
        "wrong audience": other_audience.token,
        "alg none": f"{none_header}.{payload}.",
        "garbage": "not-a-token",
    }
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    for name, value in bad.items():
        response = client.get("/api/me", headers=bearer(value))
        assert response.status_code == 401, name


def test_logout_revokes_the_access_token_and_the_refresh_family(
    client: TestClient[Litestar], tenant_a: SeededTenant
) -> None:
    tokens = login(client, tenant_a.email)
    response = client.post(
        "/api/auth/logout",
        headers=bearer(tokens["access_token"]),
        json={"refresh_token": tokens["refresh_token"]},
    )
    assert response.status_code == 204
    assert client.get("/api/me", headers=bearer(tokens["access_token"])).status_code == 401
    refresh = client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401


def test_refresh_rotates_and_reuse_revokes_the_family(
    client: TestClient[Litestar], tenant_a: SeededTenant
) -> None:
    first = login(client, tenant_a.email)
    second = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    second_tokens = second.json()
    assert second_tokens["refresh_token"] != first["refresh_token"]
    assert client.get("/api/me", headers=bearer(second_tokens["access_token"])).status_code == 200
    # An attacker replays the first (already used) refresh token: the whole family dies.
    replay = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert "reuse" in replay.json()["detail"]
    legit = client.post("/api/auth/refresh", json={"refresh_token": second_tokens["refresh_token"]})
    assert legit.status_code == 401
    assert (
        client.post("/api/auth/refresh", json={"refresh_token": "bprt_unknown"}).status_code == 401
    )


def test_api_keys_revoked_expired_malformed_and_unknown_get_401(
    app: Litestar, authed: TestClient[Litestar], tenant_a: SeededTenant, migrated: PluginSet
) -> None:
    created = authed.post("/api/apikeys", json={"name": "ci", "role": "member"})
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["key"].startswith(f"bp_{key['id']}_")
    listed = authed.get("/api/apikeys").json()
    assert key["key"] not in json.dumps(listed)
    assert authed.get("/api/me", headers=bearer(key["key"])).json()["role"] == "member"
    assert authed.delete(f"/api/apikeys/{key['id']}").status_code == 204
    assert authed.get("/api/me", headers=bearer(key["key"])).status_code == 401

    async def expired_key() -> str:
        async with rails(app).database.sessions() as session:
            from backplane.db.tenancy import bind_tenant

            bind_tenant(session, tenant_a.tenant_id)
            made = await create_api_key(
                session,
                secret_key(migrated.settings),
                tenant_id=tenant_a.tenant_id,
                name="old",
                expires_at=datetime.now(UTC) - timedelta(seconds=1),
            )
            await session.commit()
            return made.key

    old = asyncio.run(expired_key())
    assert authed.get("/api/me", headers=bearer(old)).status_code == 401
    key_id = tenant_a.api_key.split("_")[1]
    assert authed.get("/api/me", headers=bearer(f"bp_{key_id}_{'a' * 32}")).status_code == 401
    assert authed.get("/api/me", headers=bearer("bp_nope")).status_code == 401
    assert authed.get("/api/me", headers={"X-API-Key": tenant_a.api_key}).status_code == 200


def test_keys_rotate_keeps_old_tokens_valid_and_signs_with_the_new_kid(data_dir: Path) -> None:
    settings = make_settings(
        data_dir, {"BACKPLANE_AUTH__KEYRING_RELOAD_S": "0", "BACKPLANE_PLUGINS": ""}
    )
    plugins = load_plugins(settings)
    migrate(plugins)
    seeded = seed_tenant(plugins, "acme")
    app = create_app(settings, plugins=plugins)
    with TestClient(app) as client:
        old = login(client, seeded.email)["access_token"]
        old_kid = json.loads(base64.urlsafe_b64decode(old.split(".")[0] + "=="))["kid"]
        asyncio.run(
            rotate_keyring(
                rails(app).database.sessions,
                secret_key(settings),
                settings.auth.access_ttl_s,
                settings.auth.leeway_s,
            )
        )
        new = login(client, seeded.email)["access_token"]
        new_kid = json.loads(base64.urlsafe_b64decode(new.split(".")[0] + "=="))["kid"]
        assert new_kid != old_kid
        assert client.get("/api/me", headers=bearer(old)).status_code == 200
        assert client.get("/api/me", headers=bearer(new)).status_code == 200
        kids = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
        assert {old_kid, new_kid} <= kids
        assert all("d" not in k for k in client.get("/.well-known/jwks.json").json()["keys"])


def test_repeated_bad_logins_reach_429_with_retry_after(
    client: TestClient[Litestar], tenant_a: SeededTenant
) -> None:
    statuses = [
        client.post(
            "/api/auth/login", json={"email": tenant_a.email, "password": "wrong password!!"}
        ).status_code
        for _ in range(5)
    ]
    assert statuses == [401] * 5
    blocked = client.post(
        "/api/auth/login", json={"email": tenant_a.email, "password": TEST_PASSWORD}
    )
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= 300


def test_unknown_and_known_emails_take_comparable_time(data_dir: Path) -> None:
    # A realistic hash cost, so that hashing (not noise) dominates; no throttling in the way.
    settings = make_settings(
        data_dir,
        {
            "BACKPLANE_AUTH__PASSWORD_MEMORY_KIB": "19456",
            "BACKPLANE_AUTH__PASSWORD_TIME_COST": "2",
            "BACKPLANE_AUTH__LOGIN_MAX_ATTEMPTS": "1000",
            "BACKPLANE_PLUGINS": "",
        },
    )
    plugins = load_plugins(settings)
    migrate(plugins)
    seeded = seed_tenant(plugins, "acme")
    with TestClient(create_app(settings, plugins=plugins)) as client:

        def timed(email: str) -> float:
            # This process's CPU time (the app and its hashing threads run in it): the work
            # an answer costs, which other processes' load on a shared machine cannot inflate
            # the way it inflates wall time.
            start = time.process_time()
            response = client.post(
                "/api/auth/login", json={"email": email, "password": "wrong password!!"}
            )
            assert response.status_code == 401
            return time.process_time() - start

        timed(seeded.email)
        timed("warm@up.example.org")
        known: list[float] = []
        unknown: list[float] = []
        for i in range(9):  # interleaved, so that load on the machine hits both alike
            known.append(timed(seeded.email))
            unknown.append(timed(f"ghost{i}@acme.example.org"))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.6 <= ratio <= 1.6, (known, unknown)


def test_switch_tenant(
    client: TestClient[Litestar], tenant_a: SeededTenant, migrated: PluginSet
) -> None:
    second = seed_tenant(migrated, "second", email=tenant_a.email)
    tokens = login(client, tenant_a.email, tenant="acme")
    switched = client.post(
        "/api/auth/switch-tenant", headers=bearer(tokens["access_token"]), json={"tenant": "second"}
    )
    assert switched.status_code == 200, switched.text
    me = client.get("/api/me", headers=bearer(switched.json()["access_token"])).json()
    assert me["tenant_id"] == str(second.tenant_id)
    assert client.get("/api/me", headers=bearer(tokens["access_token"])).status_code == 401
    refused = client.post(
        "/api/auth/switch-tenant",
        headers=bearer(switched.json()["access_token"]),
        json={"tenant": "globex"},
    )
    assert refused.status_code == 403


def test_members_roles_and_the_last_owner(
    authed: TestClient[Litestar], tenant_a: SeededTenant
) -> None:
    added = authed.post(
        "/api/tenant/members", json={"email": "bob@acme.example.org", "role": "admin"}
    )
    assert added.status_code == 201, added.text
    bob = added.json()["user_id"]
    members = {m["email"]: m["role"] for m in authed.get("/api/tenant/members").json()}
    assert members == {tenant_a.email: "owner", "bob@acme.example.org": "admin"}
    assert authed.patch(f"/api/tenant/members/{bob}", json={"role": "viewer"}).status_code == 200
    last = authed.delete(f"/api/tenant/members/{tenant_a.user_id}")
    assert last.status_code == 400
    assert "last owner" in last.json()["detail"]
    assert authed.delete(f"/api/tenant/members/{bob}").status_code == 204
    bad_role = authed.post(
        "/api/tenant/members", json={"email": "c@acme.example.org", "role": "god"}
    )
    assert bad_role.status_code == 400


def test_an_admin_cannot_grant_owner_and_a_viewer_cannot_manage(
    client: TestClient[Litestar], migrated: PluginSet
) -> None:
    admin = seed_tenant(migrated, "acme", key_role="admin")
    response = client.post(
        "/api/tenant/members",
        headers=admin.headers,
        json={"email": "eve@acme.example.org", "role": "owner"},
    )
    assert response.status_code == 403
    viewer = client.post(
        "/api/apikeys", headers=admin.headers, json={"name": "v", "role": "viewer"}
    ).json()["key"]
    assert client.get("/api/tenant/members", headers=bearer(viewer)).status_code == 200
    assert (
        client.post("/api/apikeys", headers=bearer(viewer), json={"name": "x"}).status_code == 403
    )


def test_a_disabled_plugin_answers_404_for_that_tenant_only(
    authed: TestClient[Litestar], tenant_b: SeededTenant
) -> None:
    assert authed.get("/api/kitchen_sink/greeting").status_code == 200
    off = authed.put("/api/tenant/plugins/kitchen_sink", json={"enabled": False})
    assert off.status_code == 200
    refused = authed.get("/api/kitchen_sink/greeting")
    assert refused.status_code == 404
    assert "not enabled for this tenant" in refused.json()["detail"]
    assert authed.get("/api/kitchen_sink/greeting", headers=tenant_b.headers).status_code == 200
    states = authed.get("/api/tenant/plugins").json()
    assert {"plugin": "kitchen_sink", "enabled": False} in states
    assert authed.put("/api/tenant/plugins/kitchen_sink", json={"enabled": True}).status_code == 200
    assert authed.get("/api/kitchen_sink/greeting").status_code == 200
    assert authed.put("/api/tenant/plugins/incompatible", json={"enabled": True}).status_code == 404


def test_users_create_tenants_they_own(
    client: TestClient[Litestar], tenant_a: SeededTenant
) -> None:
    token = login(client, tenant_a.email)["access_token"]
    created = client.post("/api/tenants", headers=bearer(token), json={"slug": "newco"})
    assert created.status_code == 201, created.text
    # A taken slug gets a random suffix (no oracle of which slugs exist).
    duplicate = client.post("/api/tenants", headers=bearer(token), json={"slug": "newco"})
    assert duplicate.status_code == 201
    assert duplicate.json()["slug"].startswith("newco-")
    switched = client.post(
        "/api/auth/switch-tenant", headers=bearer(token), json={"tenant": "newco"}
    )
    assert switched.json()["role"] == "owner"


def test_change_password_applies_the_policy(
    client: TestClient[Litestar], tenant_a: SeededTenant
) -> None:
    token = login(client, tenant_a.email)["access_token"]
    url, headers = "/api/me/password", bearer(token)
    wrong = client.put(
        url,
        headers=headers,
        json={"current_password": "nope" * 4, "new_password": "a fresh long passphrase"},
    )
    assert wrong.status_code == 403
    for weak, reason in (("short", "12 characters"), ("password1234", "common")):
        refused = client.put(
            url, headers=headers, json={"current_password": TEST_PASSWORD, "new_password": weak}
        )
        assert refused.status_code == 400
        assert reason in refused.json()["detail"]
    changed = client.put(
        url,
        headers=headers,
        json={"current_password": TEST_PASSWORD, "new_password": "a fresh long passphrase"},
    )
    assert changed.status_code == 200
    assert changed.json()["role"] == "owner"
    assert login(client, tenant_a.email, "a fresh long passphrase")["role"] == "owner"


def test_cli_members_and_passwords(data_dir: Path) -> None:
    from tests.cli import run_cli

    env = {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_PLUGINS": ""}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    assert (
        run_cli("tenants", "create", "acme", "--owner-email", "a@acme.org", env=env).returncode == 0
    )
    added = run_cli("tenants", "member", "acme", "b@acme.org", "admin", env=env)
    assert added.returncode == 0, added.stderr
    last = run_cli("tenants", "member", "acme", "a@acme.org", "remove", env=env)
    assert last.returncode == 1
    assert "last owner" in last.stderr
    weak = run_cli(
        "users", "set-password", "b@acme.org", "--password-stdin", env=env, stdin="password1234\n"
    )
    assert weak.returncode == 1
    assert "common" in weak.stderr
    ok = run_cli(
        "users",
        "set-password",
        "b@acme.org",
        "--password-stdin",
        env=env,
        stdin="b's long passphrase\n",
    )
    assert ok.returncode == 0, ok.stderr
    missing = run_cli(
        "users",
        "set-password",
        "nobody@acme.org",
        "--password-stdin",
        env=env,
        stdin="another long passphrase\n",
    )
    assert missing.returncode == 1
    assert "no user" in missing.stderr


def test_a_removed_member_loses_access_before_the_token_expires(
    authed: TestClient[Litestar], migrated: PluginSet
) -> None:
    from backplane.testing import seed_tenant as seed

    other = seed(migrated, "other", email="bob@acme.example.org")
    added = authed.post("/api/tenant/members", json={"email": other.email, "role": "member"})
    assert added.status_code == 201
    token = login(authed, other.email, tenant="acme")["access_token"]
    assert authed.get("/api/me", headers=bearer(token)).json()["role"] == "member"
    assert (
        authed.patch(f"/api/tenant/members/{other.user_id}", json={"role": "viewer"}).status_code
        == 200
    )
    assert authed.get("/api/me", headers=bearer(token)).json()["role"] == "viewer"
    assert authed.delete(f"/api/tenant/members/{other.user_id}").status_code == 204
    assert authed.get("/api/me", headers=bearer(token)).status_code == 401
