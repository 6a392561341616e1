"""The account flows in process, on SQLite and on real PostgreSQL (row-level security on, the
application connecting as a role that cannot bypass it): invitation rules, and every link
working once on both databases. The end-to-end journey over a real server, with the timing
measurement, is ``test_account_flows.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.settings import Settings
from tests.conftest import make_settings
from tests.identity_helpers import PASSWORD, Seeded
from tests.mail_helpers import link_in, mails_to
from tests.waiting import wait_for

NEW_PASSWORD = "a brand new passphrase 77"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, data_dir: Path) -> Settings:
    env: dict[str, str] = {}
    if request.param == "postgres":
        env.update(request.getfixturevalue("postgres_app_env"))
    return make_settings(data_dir, env)


def token_in_mail(data_dir: Path, address: str, count: int = 1) -> str:
    mails = wait_for(
        lambda: (found := mails_to(data_dir, address)) and len(found) >= count and found,
        message=f"mail {count} to {address}",
    )
    return parse_qs(urlsplit(link_in(mails[count - 1])).query)["token"][0]


def key(client: TestClient[Litestar], tenant: Seeded, **fields: Any) -> dict[str, str]:
    made = client.post("/api/apikeys", json={"name": "k", **fields}, headers=tenant.headers)
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}"}


def test_invitation_rules(client: TestClient[Litestar], tenant_a: Seeded) -> None:
    invite = "/api/tenant/invites"
    admin = key(client, tenant_a, role="admin")
    above = client.post(invite, json={"email": "boss@example.org", "role": "owner"}, headers=admin)
    assert above.status_code == 403
    assert "cannot invite a owner" in above.json()["detail"]
    scoped = key(client, tenant_a, role="admin", scopes=["tenant.members.manage"])
    narrow = client.post(invite, json={"email": "x@example.org", "role": "admin"}, headers=scoped)
    assert narrow.status_code == 403
    assert "scopes lack" in narrow.json()["detail"]
    member = client.post(invite, json={"email": tenant_a.email}, headers=tenant_a.headers)
    assert member.status_code == 409
    bad = client.post(invite, json={"email": "no-at-sign"}, headers=tenant_a.headers)
    assert bad.status_code == 400
    viewer = key(client, tenant_a, role="viewer")
    assert client.post(invite, json={"email": "v@example.org"}, headers=viewer).status_code == 403
    assert client.get(invite, headers=viewer).status_code == 403


def test_every_link_works_once(
    client: TestClient[Litestar], tenant_a: Seeded, tenant_b: Seeded, data_dir: Path
) -> None:
    # An invitation of tenant B's owner into A: linked, B's row-level security notwithstanding.
    invited = client.post(
        "/api/tenant/invites", json={"email": tenant_b.email}, headers=tenant_a.headers
    )
    assert invited.status_code == 201, invited.text
    token = token_in_mail(data_dir, tenant_b.email)
    accept = "/api/auth/invites/accept"
    assert client.get(accept, params={"token": token}).json()["tenant_slug"] == "acme"
    assert client.post(accept, json={"token": token}).status_code == 200
    assert client.post(accept, json={"token": token}).status_code == 400
    login = {"email": tenant_b.email, "password": PASSWORD, "tenant": "acme"}
    assert client.post("/api/auth/login", json=login).json()["role"] == "member"

    # A reset of A's owner.
    assert (
        client.post("/api/auth/password-reset", json={"email": tenant_a.email}).status_code == 202
    )
    token = token_in_mail(data_dir, tenant_a.email)
    complete = "/api/auth/password-reset/complete"
    body = {"token": token, "new_password": NEW_PASSWORD}
    assert client.post(complete, json=body).status_code == 200
    assert client.post(complete, json=body).status_code == 400
    login = {"email": tenant_a.email, "password": NEW_PASSWORD}
    session = client.post("/api/auth/login", json=login)
    assert session.status_code == 200

    # A verification of A's owner (already verified by the reset; verified again, once).
    access = {"Authorization": f"Bearer {session.json()['access_token']}"}
    requested = client.post("/api/auth/verify-email/request", headers=access)
    assert requested.status_code == 202
    token = token_in_mail(data_dir, tenant_a.email, count=2)
    assert client.post("/api/auth/verify-email", json={"token": token}).status_code == 200
    assert client.post("/api/auth/verify-email", json={"token": token}).status_code == 400
    account = client.get("/api/auth/account", headers=access).json()
    assert account["email"] == tenant_a.email
    assert account["email_verified_at"] is not None


def test_links_of_one_kind_do_not_work_for_another(
    client: TestClient[Litestar], tenant_a: Seeded, data_dir: Path
) -> None:
    client.post("/api/auth/password-reset", json={"email": tenant_a.email})
    token = token_in_mail(data_dir, tenant_a.email)
    assert client.post("/api/auth/verify-email", json={"token": token}).status_code == 400
    accept = client.post("/api/auth/invites/accept", json={"token": token})
    assert accept.status_code == 400
    body = {"token": token, "new_password": NEW_PASSWORD}
    assert client.post("/api/auth/password-reset/complete", json=body).status_code == 200
