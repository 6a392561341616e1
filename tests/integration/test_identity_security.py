"""Security regressions of the identity layer (issue #15), each on SQLite and on PostgreSQL.

Refresh-token reuse under concurrency, API keys bound to their creator's membership and
narrowed by their scopes, sessions ended by a password change, the tenant-slug oracle, forged
claims, caching of credential responses, and the per-tenant / per-user caps under concurrency.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import delete, select

from backplane.app import create_app
from backplane.identity.auth import REVALIDATE_S
from backplane.identity.models import ApiKey, Membership
from backplane.identity.tenants import SLUG_PATTERN
from backplane.loading import load_plugins
from backplane.plugins import PluginSet
from backplane.testing import TEST_PASSWORD, SeededTenant, seed_tenant
from tests.app_helpers import rails
from tests.cli import run_cli
from tests.conftest import make_settings
from tests.db_helpers import admin_session, migrate
from tests.identity_helpers import TEST_PASSWORD_ENV
from tests.waiting import wait_for

NEW_PASSWORD = "a fresh long passphrase"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client: TestClient[Litestar], email: str, password: str = TEST_PASSWORD) -> Any:
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def refresh(client: TestClient[Litestar], token: str) -> int:
    return client.post("/api/auth/refresh", json={"refresh_token": token}).status_code


def add_member(
    client: TestClient[Litestar],
    plugins: PluginSet,
    tenant: SeededTenant,
    email: str,
    role: str,
) -> tuple[SeededTenant, str]:
    """A user with a password (owner of a tenant of their own) added to ``tenant`` with
    ``role``; returns them and an access token acting in ``tenant``."""
    user = seed_tenant(plugins, f"home-{uuid.uuid4().hex[:8]}", email=email)
    added = client.post(
        "/api/tenant/members", headers=tenant.headers, json={"email": email, "role": role}
    )
    assert added.status_code == 201, added.text
    tokens = client.post(
        "/api/auth/login", json={"email": email, "password": TEST_PASSWORD, "tenant": tenant.slug}
    )
    assert tokens.status_code == 200, tokens.text
    return user, tokens.json()["access_token"]


def cli_env(data_dir: Path, db_env: dict[str, str]) -> dict[str, str]:
    """The environment a ``backplane`` command needs to reach the test's database."""
    return {"BACKPLANE_DATA_DIR": str(data_dir), **TEST_PASSWORD_ENV, **db_env}


SEEN_WITHIN_S = REVALIDATE_S + 2.0
"""A change made behind the server's back (by the CLI or an admin session, not through this
server) is seen by the server within ``REVALIDATE_S``."""


async def _admin_work(plugins: PluginSet, work: Callable[[Any], Any]) -> Any:
    reason = "test changes the database behind the server's back"
    async with admin_session(plugins.settings, reason) as session, session.begin():
        return await work(session)


# -- 2: refresh-token reuse under concurrency ---------------------------------------------------


def concurrently(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` at once from threads: the test client hands each request to the app's
    event loop, where they interleave like requests from separate clients."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


@pytest.mark.parametrize("racers", [2, 10])
def test_concurrent_refreshes_of_one_token_let_exactly_one_win(
    dual_client: TestClient[Litestar], dual_tenant_a: SeededTenant, racers: int
) -> None:
    """The spec: one caller wins the rotation; every other use of the token, concurrent or
    later, is reuse, which revokes the whole family -- including the winner's new refresh
    token (a stolen token raced against its owner must end the session for both)."""
    token = login(dual_client, dual_tenant_a.email)["refresh_token"]
    answers = concurrently(
        [
            lambda: dual_client.post("/api/auth/refresh", json={"refresh_token": token})
            for _ in range(racers)
        ]
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [401] * (racers - 1), [a.text for a in answers]
    winner = next(a.json() for a in answers if a.status_code == 200)
    assert refresh(dual_client, winner["refresh_token"]) == 401


# -- 3: API keys die with their creator's membership ---------------------------------------------


def test_a_removed_members_api_keys_die_with_the_membership(
    dual_client: TestClient[Litestar], dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    bob, token = add_member(dual_client, dual_plugins, dual_tenant_a, "bob@example.org", "admin")
    made = dual_client.post(
        "/api/apikeys", headers=bearer(token), json={"name": "bob's", "role": "admin"}
    )
    assert made.status_code == 201, made.text
    key = made.json()
    assert dual_client.get("/api/me", headers=bearer(key["key"])).json()["role"] == "admin"

    removed = dual_client.delete(
        f"/api/tenant/members/{bob.user_id}", headers=dual_tenant_a.headers
    )
    assert removed.status_code == 204
    assert dual_client.get("/api/me", headers=bearer(token)).status_code == 401
    assert dual_client.get("/api/me", headers=bearer(key["key"])).status_code == 401
    comeback = dual_client.post(
        "/api/tenant/members",
        headers=bearer(key["key"]),
        json={"email": bob.email, "role": "admin"},
    )
    assert comeback.status_code == 401

    # Re-adding the member does not revive the key: it was revoked, not only refused.
    readded = dual_client.post(
        "/api/tenant/members",
        headers=dual_tenant_a.headers,
        json={"email": bob.email, "role": "admin"},
    )
    assert readded.status_code == 201
    assert dual_client.get("/api/me", headers=bearer(key["key"])).status_code == 401
    listed = {
        k["id"]: k for k in dual_client.get("/api/apikeys", headers=dual_tenant_a.headers).json()
    }
    assert listed[key["id"]]["revoked_at"] is not None
    assert listed[dual_tenant_a.api_key_id]["revoked_at"] is None


def test_an_api_key_acts_with_at_most_its_creators_current_role(
    dual_client: TestClient[Litestar], dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    bob, token = add_member(dual_client, dual_plugins, dual_tenant_a, "bob@example.org", "admin")
    key = dual_client.post(
        "/api/apikeys", headers=bearer(token), json={"name": "bob's", "role": "admin"}
    ).json()["key"]
    demoted = dual_client.patch(
        f"/api/tenant/members/{bob.user_id}", headers=dual_tenant_a.headers, json={"role": "viewer"}
    )
    assert demoted.status_code == 200
    me = dual_client.get("/api/me", headers=bearer(key)).json()
    assert me["role"] == "viewer"
    assert "apikeys.manage" not in me["permissions"]
    assert (
        dual_client.post("/api/apikeys", headers=bearer(key), json={"name": "x"}).status_code == 403
    )
    promoted = dual_client.patch(
        f"/api/tenant/members/{bob.user_id}", headers=dual_tenant_a.headers, json={"role": "owner"}
    )
    assert promoted.status_code == 200
    # The key's own role still caps it.
    assert dual_client.get("/api/me", headers=bearer(key)).json()["role"] == "admin"


def test_removing_a_member_with_the_cli_revokes_their_keys(
    dual_client: TestClient[Litestar],
    dual_plugins: PluginSet,
    dual_tenant_a: SeededTenant,
    data_dir: Path,
    db_env: dict[str, str],
) -> None:
    _bob, token = add_member(dual_client, dual_plugins, dual_tenant_a, "bob@example.org", "admin")
    key = dual_client.post(
        "/api/apikeys", headers=bearer(token), json={"name": "bob's", "role": "admin"}
    ).json()
    assert dual_client.get("/api/me", headers=bearer(key["key"])).status_code == 200
    removed = run_cli(
        "tenants", "member", "acme", "bob@example.org", "remove", env=cli_env(data_dir, db_env)
    )
    assert removed.returncode == 0, removed.stderr

    async def revoked_at(session: Any) -> Any:
        return await session.scalar(select(ApiKey.revoked_at).where(ApiKey.id == key["id"]))

    assert asyncio.run(_admin_work(dual_plugins, revoked_at)) is not None
    wait_for(
        lambda: dual_client.get("/api/me", headers=bearer(key["key"])).status_code == 401,
        message="the removed member's key to be refused",
        timeout=SEEN_WITHIN_S,
    )


def test_a_key_is_refused_once_its_creator_is_no_member_even_if_never_revoked(
    dual_client: TestClient[Litestar], dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    """Keys of members removed before keys were revoked with the membership, or removed by
    any path that does not revoke, are refused at authentication."""
    bob, token = add_member(dual_client, dual_plugins, dual_tenant_a, "bob@example.org", "admin")
    key = dual_client.post(
        "/api/apikeys", headers=bearer(token), json={"name": "bob's", "role": "admin"}
    ).json()["key"]
    assert dual_client.get("/api/me", headers=bearer(key)).status_code == 200

    async def drop_membership(session: Any) -> None:
        await session.execute(
            delete(Membership).where(
                Membership.user_id == bob.user_id, Membership.tenant_id == dual_tenant_a.tenant_id
            )
        )

    asyncio.run(_admin_work(dual_plugins, drop_membership))
    wait_for(
        lambda: dual_client.get("/api/me", headers=bearer(key)).status_code == 401,
        message="the key of a creator who is no member to be refused",
        timeout=SEEN_WITHIN_S,
    )
    assert dual_client.get("/api/me", headers=dual_tenant_a.headers).status_code == 200, (
        "operator keys and other members' keys are unaffected"
    )


# -- 4: API key scopes -------------------------------------------------------------------------


def test_api_key_scopes_limit_what_the_key_may_do(
    dual_client: TestClient[Litestar], dual_tenant_a: SeededTenant
) -> None:
    made = dual_client.post(
        "/api/apikeys",
        headers=dual_tenant_a.headers,
        json={"name": "reader", "role": "owner", "scopes": ["models.read"]},
    )
    assert made.status_code == 201, made.text
    reader = bearer(made.json()["key"])
    assert dual_client.get("/api/me", headers=reader).json()["permissions"] == ["models.read"]
    assert dual_client.get("/api/models", headers=reader).status_code == 200
    assert dual_client.post("/api/apikeys", headers=reader, json={"name": "x"}).status_code == 403
    event = {"events": [{"transaction_id": "t1", "code": "inference.requests"}]}
    assert dual_client.post("/api/billing/events", headers=reader, json=event).status_code == 403
    assert dual_client.get("/api/tenant/members", headers=reader).status_code == 403


def test_unknown_scopes_are_refused_by_name(
    dual_client: TestClient[Litestar],
    dual_tenant_a: SeededTenant,
    data_dir: Path,
    db_env: dict[str, str],
) -> None:
    refused = dual_client.post(
        "/api/apikeys",
        headers=dual_tenant_a.headers,
        json={"name": "typo", "scopes": ["models.read", "models.raed"]},
    )
    assert refused.status_code == 400
    assert "models.raed" in refused.json()["detail"]
    cli = run_cli(
        "apikeys",
        "create",
        "--tenant",
        "acme",
        "--name",
        "typo",
        "--scope",
        "models.read",
        "--scope",
        "billing.evnets.write",
        env=cli_env(data_dir, db_env),
    )
    assert cli.returncode == 1
    assert "billing.evnets.write" in cli.stderr
    ok = run_cli(
        "apikeys",
        "create",
        "--tenant",
        "acme",
        "--name",
        "reader",
        "--scope",
        "models.read",
        "--json",
        env=cli_env(data_dir, db_env),
    )
    assert ok.returncode == 0, ok.stderr


def test_a_scoped_key_cannot_hand_out_more_than_it_holds(
    dual_client: TestClient[Litestar], dual_tenant_a: SeededTenant
) -> None:
    manager = bearer(
        dual_client.post(
            "/api/apikeys",
            headers=dual_tenant_a.headers,
            json={"name": "manager", "role": "owner", "scopes": ["apikeys.manage"]},
        ).json()["key"]
    )
    child = dual_client.post("/api/apikeys", headers=manager, json={"name": "c", "role": "owner"})
    assert child.status_code == 201, child.text
    assert child.json()["scopes"] == ["apikeys.manage"]
    child_me = dual_client.get("/api/me", headers=bearer(child.json()["key"])).json()
    assert child_me["permissions"] == ["apikeys.manage"]
    wider = dual_client.post(
        "/api/apikeys", headers=manager, json={"name": "w", "scopes": ["billing.events.write"]}
    )
    assert wider.status_code == 403
    assert "billing.events.write" in wider.json()["detail"]

    # Members too: a scoped key may only add roles whose permissions it holds itself.
    viewer_key = dual_client.post(
        "/api/apikeys", headers=dual_tenant_a.headers, json={"name": "v", "role": "viewer"}
    ).json()["key"]
    viewers_may = dual_client.get("/api/me", headers=bearer(viewer_key)).json()["permissions"]
    hr = bearer(
        dual_client.post(
            "/api/apikeys",
            headers=dual_tenant_a.headers,
            json={"name": "hr", "role": "owner", "scopes": ["tenant.members.manage", *viewers_may]},
        ).json()["key"]
    )
    for role in ("owner", "admin", "member"):
        refused = dual_client.post(
            "/api/tenant/members", headers=hr, json={"email": "eve@example.org", "role": role}
        )
        assert refused.status_code == 403, role
    viewer = dual_client.post(
        "/api/tenant/members", headers=hr, json={"email": "eve@example.org", "role": "viewer"}
    )
    assert viewer.status_code == 201, viewer.text


# -- 5: a password change ends every other session ---------------------------------------------


def test_a_password_change_ends_every_other_session(
    dual_client: TestClient[Litestar], dual_tenant_a: SeededTenant
) -> None:
    elsewhere = login(dual_client, dual_tenant_a.email)
    here = login(dual_client, dual_tenant_a.email)
    changed = dual_client.put(
        "/api/me/password",
        headers=bearer(here["access_token"]),
        json={"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 200, changed.text
    fresh = changed.json()
    for old in (elsewhere, here):
        assert dual_client.get("/api/me", headers=bearer(old["access_token"])).status_code == 401
        assert refresh(dual_client, old["refresh_token"]) == 401
    assert dual_client.get("/api/me", headers=bearer(fresh["access_token"])).status_code == 200
    assert refresh(dual_client, fresh["refresh_token"]) == 200
    assert login(dual_client, dual_tenant_a.email, NEW_PASSWORD)["role"] == "owner"
    assert dual_client.get("/api/me", headers=dual_tenant_a.headers).status_code == 200


def test_guessing_the_current_password_is_throttled_like_logins(
    dual_client: TestClient[Litestar], dual_tenant_a: SeededTenant
) -> None:
    """A stolen access token must not buy unlimited guesses of the account's password: wrong
    current passwords count against the account's login throttle (auth.login_max_attempts)."""
    token = bearer(login(dual_client, dual_tenant_a.email)["access_token"])
    guess = {"current_password": "not the password 1", "new_password": NEW_PASSWORD}
    answers = [
        dual_client.put("/api/me/password", headers=token, json=guess).status_code for _ in range(6)
    ]
    assert answers == [403] * 5 + [429]
    right = {"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD}
    throttled = dual_client.put("/api/me/password", headers=token, json=right)
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) >= 1


def test_setting_a_password_with_the_cli_ends_every_session(
    dual_client: TestClient[Litestar],
    dual_tenant_a: SeededTenant,
    data_dir: Path,
    db_env: dict[str, str],
) -> None:
    before = login(dual_client, dual_tenant_a.email)
    assert dual_client.get("/api/me", headers=bearer(before["access_token"])).status_code == 200
    done = run_cli(
        "users",
        "set-password",
        dual_tenant_a.email,
        "--password-stdin",
        env=cli_env(data_dir, db_env),
        stdin=NEW_PASSWORD + "\n",
    )
    assert done.returncode == 0, done.stderr
    assert refresh(dual_client, before["refresh_token"]) == 401
    wait_for(
        lambda: (
            dual_client.get("/api/me", headers=bearer(before["access_token"])).status_code == 401
        ),
        message="the access token of the ended session to be refused",
        timeout=SEEN_WITHIN_S,
    )
    after = login(dual_client, dual_tenant_a.email, NEW_PASSWORD)
    assert dual_client.get("/api/me", headers=bearer(after["access_token"])).status_code == 200


# -- 11: creating a tenant is no slug oracle -----------------------------------------------------


def test_creating_a_tenant_does_not_reveal_whether_the_slug_is_taken(
    dual_client: TestClient[Litestar], dual_tenant_a: SeededTenant, dual_tenant_b: SeededTenant
) -> None:
    token = login(dual_client, dual_tenant_b.email)["access_token"]

    def create(slug: str) -> Any:
        return dual_client.post("/api/tenants", headers=bearer(token), json={"slug": slug})

    free, taken = create("initech"), create("acme")
    assert (free.status_code, taken.status_code) == (201, 201), (free.text, taken.text)
    assert free.json()["slug"] == "initech"
    slug = taken.json()["slug"]
    assert re.fullmatch(r"acme-[a-z0-9]{4}", slug), slug
    assert set(free.json()) == set(taken.json())
    assert taken.json()["name"] == "acme"
    longest = "a" * 63
    assert create(longest).json()["slug"] == longest
    again = create(longest)
    assert again.status_code == 201
    assert SLUG_PATTERN.match(again.json()["slug"])
    assert len(again.json()["slug"]) == 63
    assert create("Not A Slug").status_code == 400
    switched = dual_client.post(
        "/api/auth/switch-tenant", headers=bearer(token), json={"tenant": slug}
    )
    assert switched.json()["role"] == "owner"


# -- 12: forged claims and cached credentials ----------------------------------------------------


@pytest.mark.parametrize("bad", ["sub", "tid"])
def test_signed_tokens_with_a_non_uuid_subject_or_tenant_get_401(
    dual_client: TestClient[Litestar], dual_tenant_a: SeededTenant, bad: str
) -> None:
    tokens = rails(dual_client.app).identity.identity.tokens
    ids = {"sub": str(dual_tenant_a.user_id), "tid": str(dual_tenant_a.tenant_id), bad: "acme"}
    forged = tokens.issue_access_token(user_id=ids["sub"], tenant_id=ids["tid"])
    response = dual_client.get("/api/me", headers=bearer(forged.token))
    assert response.status_code == 401, response.text


def test_responses_carrying_credentials_are_not_cached(
    dual_client: TestClient[Litestar], dual_tenant_a: SeededTenant
) -> None:
    seed_tenant_owner_second = login(dual_client, dual_tenant_a.email)
    answers = {
        "login": dual_client.post(
            "/api/auth/login", json={"email": dual_tenant_a.email, "password": TEST_PASSWORD}
        ),
        "refresh": dual_client.post(
            "/api/auth/refresh",
            json={"refresh_token": seed_tenant_owner_second["refresh_token"]},
        ),
        "api key": dual_client.post(
            "/api/apikeys", headers=dual_tenant_a.headers, json={"name": "cached?"}
        ),
    }
    token = answers["login"].json()["access_token"]
    answers["switch tenant"] = dual_client.post(
        "/api/auth/switch-tenant", headers=bearer(token), json={"tenant": "acme"}
    )
    answers["password change"] = dual_client.put(
        "/api/me/password",
        headers=bearer(answers["switch tenant"].json()["access_token"]),
        json={"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD},
    )
    endpoint = dual_client.post(
        "/api/billing/webhooks",
        headers=dual_tenant_a.headers,
        json={"url": "https://93.184.216.34/hook"},
    )
    answers["webhook secret"] = endpoint
    answers["rotated webhook secret"] = dual_client.post(
        f"/api/billing/webhooks/{endpoint.json()['id']}/rotate-secret",
        headers=dual_tenant_a.headers,
    )
    for name, answer in answers.items():
        assert answer.status_code in (200, 201), (name, answer.text)
        assert "no-store" in answer.headers.get("cache-control", ""), name
        assert answer.headers.get("pragma") == "no-cache", name


# -- 9: caps on API keys per tenant and tenants per user -----------------------------------------


@pytest.fixture
def capped_app(data_dir: Path, db_env: dict[str, str]) -> Litestar:
    settings = make_settings(
        data_dir,
        {
            **db_env,
            "BACKPLANE_AUTH__MAX_API_KEYS_PER_TENANT": "5",
            "BACKPLANE_AUTH__MAX_TENANTS_PER_USER": "3",
        },
    )
    plugins = load_plugins(settings)
    migrate(plugins)
    return create_app(settings, plugins=plugins)


def _race_past_a_cap(
    client: TestClient[Litestar],
    path: str,
    bodies: list[dict[str, str]],
    admitted: int,
    setting: str,
    cap: int | None = None,
) -> None:
    """POST ``bodies`` at once: exactly ``admitted`` get 201, the rest a 409 naming the cap
    (``admitted`` unless given) and its ``setting``."""
    answers = concurrently([lambda b=b: client.post(path, json=b) for b in bodies])
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] * admitted + [409] * (len(bodies) - admitted), [
        a.text for a in answers
    ]
    refused = next(a for a in answers if a.status_code == 409).json()["detail"]
    assert str(admitted if cap is None else cap) in refused
    assert setting in refused


def test_the_api_key_cap_holds_under_concurrency(capped_app: Litestar) -> None:
    tenant = seed_tenant(rails(capped_app).plugins, "acme")
    with TestClient(capped_app, timeout=60) as client:
        client.headers.update(bearer(login(client, tenant.email)["access_token"]))
        # Revoked keys do not count: revoke the seeded one, so the tenant holds none.
        assert client.delete(f"/api/apikeys/{tenant.api_key_id}").status_code == 204
        bodies = [{"name": f"k{i}"} for i in range(30)]
        _race_past_a_cap(client, "/api/apikeys", bodies, 5, "auth.max_api_keys_per_tenant")
        keys = client.get("/api/apikeys").json()
        assert len([k for k in keys if k["revoked_at"] is None]) == 5
        one = next(k for k in keys if k["revoked_at"] is None)
        assert client.delete(f"/api/apikeys/{one['id']}").status_code == 204
        assert client.post("/api/apikeys", json={"name": "again"}).status_code == 201


def test_the_tenants_per_user_cap_holds_under_concurrency(capped_app: Litestar) -> None:
    tenant = seed_tenant(rails(capped_app).plugins, "acme")
    with TestClient(capped_app, timeout=60) as client:
        client.headers.update(bearer(login(client, tenant.email)["access_token"]))
        bodies = [{"slug": f"new-{i}"} for i in range(10)]
        _race_past_a_cap(client, "/api/tenants", bodies, 2, "auth.max_tenants_per_user", cap=3)
        me = client.get("/api/me").json()
        assert len([m for m in me["memberships"] if m["role"] == "owner"]) == 3
