"""Issue 19, acceptance 3: invitations, password resets and e-mail verification end to end,
against a real ``backplane serve`` (SQLite, its embedded worker, the dev mail transport): the
test reads each link from the ``.eml`` file on disk and follows it over HTTP. One-time links:
of two concurrent uses exactly one wins. A reset request answers the same (status, body, and
time within noise) whether or not the address has an account."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from backplane.loading import load_plugins
from tests.cli import Server, free_port, run_cli, serving
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import PASSWORD, TEST_PASSWORD_ENV, Seeded, seed_tenant
from tests.mail_helpers import link_in, mails_to
from tests.waiting import wait_for

pytestmark = pytest.mark.slow  # a real server process
NEW_PASSWORD = "a brand new passphrase 77"


class Site:
    def __init__(self, server: Server, data_dir: Path, env: dict[str, str], acme: Seeded) -> None:
        self.server, self.data_dir, self.env, self.acme = server, data_dir, env, acme
        self.http = httpx.Client(base_url=server.base, timeout=20)

    def link_to(self, address: str, count: int = 1) -> str:
        """The link in the ``count``-th mail to ``address`` (waiting for it to be written)."""
        mails = wait_for(
            lambda: (found := mails_to(self.data_dir, address)) and len(found) >= count and found,
            message=f"mail number {count} to {address}",
        )
        url = link_in(mails[count - 1])
        assert url.startswith(self.server.base + "/api/")
        return url

    def login(self, email: str, password: str, tenant: str | None = None) -> httpx.Response:
        body = {"email": email, "password": password, **({"tenant": tenant} if tenant else {})}
        return self.http.post("/api/auth/login", json=body)


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def site(data_dir: Path, tmp_path: Path) -> Iterator[Site]:
    port = free_port()
    env = {
        "BACKPLANE_DATA_DIR": str(data_dir),
        "BACKPLANE_PLUGINS": "kitchen_sink",
        "BACKPLANE_MAIL__LINK_BASE_URL": f"http://127.0.0.1:{port}",
        **TEST_PASSWORD_ENV,
    }
    plugins = load_plugins(make_settings(data_dir, env))
    migrate(plugins)
    acme = seed_tenant(plugins, "acme")
    seed_tenant(plugins, "globex")
    with serving(env, tmp_path / "serve.log", port=port) as server:
        site = Site(server, data_dir, env, acme)
        try:
            yield site
        finally:
            site.http.close()


def test_an_invitation_creates_the_account(site: Site) -> None:
    invited = site.http.post(
        "/api/tenant/invites",
        json={"email": "New.Person@Example.org", "role": "member"},
        headers=site.acme.headers,
    )
    assert invited.status_code == 201, invited.text
    assert invited.json()["email"] == "new.person@example.org"
    url = site.link_to("new.person@example.org")
    assert url.startswith(f"{site.server.base}/api/auth/invites/accept?token=bpinv_")

    shown = site.http.get(url)  # looking does not use it up
    assert shown.status_code == 200, shown.text
    assert shown.json() | {"expires_at": None} == {
        "tenant_slug": "acme",
        "tenant_name": "acme",
        "email": "new.person@example.org",
        "role": "member",
        "expires_at": None,
        "account_exists": False,
    }
    token = token_of(url)
    needs = site.http.post("/api/auth/invites/accept", json={"token": token})
    assert needs.status_code == 400
    assert "choose a password" in needs.json()["detail"]
    weak = site.http.post("/api/auth/invites/accept", json={"token": token, "password": "short"})
    assert weak.status_code == 400
    assert "password refused" in weak.json()["detail"]

    accepted = site.http.post(
        "/api/auth/invites/accept", json={"token": token, "password": NEW_PASSWORD}
    )
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert (body["tenant_slug"], body["role"], body["created_account"]) == ("acme", "member", True)
    access = body["tokens"]["access_token"]
    me = site.http.get("/api/me", headers=bearer(access)).json()
    assert (me["email"], me["role"], me["tenant_id"]) == (
        "new.person@example.org",
        "member",
        str(site.acme.tenant_id),
    )
    account = site.http.get("/api/auth/account", headers=bearer(access)).json()
    assert account["email_verified_at"] is not None  # the link proved the address
    assert site.login("new.person@example.org", NEW_PASSWORD).status_code == 200

    again = site.http.post("/api/auth/invites/accept", json={"token": token, "password": "x" * 20})
    assert again.status_code == 400
    assert again.json()["detail"] == "this link is invalid, expired or was already used"
    assert site.http.get(url).status_code == 400
    listed = site.http.get("/api/tenant/invites", headers=site.acme.headers).json()
    assert [i["accepted_at"] is not None for i in listed] == [True]
    audited = site.http.get(
        "/api/audit", params={"action": "member.added"}, headers=site.acme.headers
    ).json()["items"]
    joined = [row for row in audited if row["target_id"] == body["user_id"]]
    assert [(r["actor_kind"], r["actor_id"], r["details"]["role"]) for r in joined] == [
        ("user", body["user_id"], "member")
    ]


def test_an_invitation_links_an_existing_account(site: Site) -> None:
    existing = "owner@globex.example.org"  # owns tenant globex
    invited = site.http.post(
        "/api/tenant/invites", json={"email": existing, "role": "admin"}, headers=site.acme.headers
    )
    assert invited.status_code == 201, invited.text
    url = site.link_to(existing)
    assert site.http.get(url).json()["account_exists"] is True
    accepted = site.http.post("/api/auth/invites/accept", json={"token": token_of(url)})
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert (body["created_account"], body["tokens"], body["role"]) == (False, None, "admin")
    # No session is handed out: the account's owner logs in with their own password.
    logged_in = site.login(existing, PASSWORD, tenant="acme")
    assert logged_in.status_code == 200, logged_in.text
    assert logged_in.json()["role"] == "admin"
    assert site.login(existing, PASSWORD, tenant="globex").json()["role"] == "owner"


def test_a_revoked_invitation_cannot_be_accepted(site: Site) -> None:
    invited = site.http.post(
        "/api/tenant/invites", json={"email": "late@example.org"}, headers=site.acme.headers
    ).json()
    url = site.link_to("late@example.org")
    revoked = site.http.delete(f"/api/tenant/invites/{invited['id']}", headers=site.acme.headers)
    assert revoked.status_code == 204
    refused = site.http.post(
        "/api/auth/invites/accept", json={"token": token_of(url), "password": NEW_PASSWORD}
    )
    assert refused.status_code == 400


def _at_once(calls: list[Any]) -> list[httpx.Response]:
    """Run the calls in threads released together; their responses, in order."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        start.wait()
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_two_concurrent_acceptances_of_one_invitation_exactly_one_wins(site: Site) -> None:
    site.http.post(
        "/api/tenant/invites", json={"email": "race@example.org"}, headers=site.acme.headers
    )
    token = token_of(site.link_to("race@example.org"))
    body = {"token": token, "password": NEW_PASSWORD}
    url = f"{site.server.base}/api/auth/invites/accept"
    answers = _at_once([lambda: httpx.post(url, json=body, timeout=20) for _ in range(2)])
    assert sorted(a.status_code for a in answers) == [200, 400], [a.text for a in answers]
    members = site.http.get("/api/tenant/members", headers=site.acme.headers).json()
    assert [m["email"] for m in members].count("race@example.org") == 1


def test_password_reset_ends_every_session(site: Site) -> None:
    owner = site.acme.email
    session = site.login(owner, PASSWORD).json()
    asked = site.http.post("/api/auth/password-reset", json={"email": owner.upper()})
    assert asked.status_code == 202
    url = site.link_to(owner)
    assert url.startswith(f"{site.server.base}/api/auth/password-reset/complete?token=bprst_")
    shown = site.http.get(url)
    assert shown.status_code == 200
    assert shown.json()["email"] == owner
    token = token_of(url)
    complete = "/api/auth/password-reset/complete"
    weak = site.http.post(complete, json={"token": token, "new_password": "password"})
    assert weak.status_code == 400  # the policy; the link stays usable
    done = site.http.post(complete, json={"token": token, "new_password": NEW_PASSWORD})
    assert done.status_code == 200, done.text

    refreshed = site.http.post(
        "/api/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refreshed.status_code == 401
    assert site.http.get("/api/me", headers=bearer(session["access_token"])).status_code == 401
    assert site.login(owner, PASSWORD).status_code == 401
    fresh = site.login(owner, NEW_PASSWORD)
    assert fresh.status_code == 200
    reused = site.http.post(complete, json={"token": token, "new_password": "another one 123456"})
    assert reused.status_code == 400
    audited = site.http.get(
        "/api/audit",
        params={"action": "auth.password_changed"},
        headers=bearer(fresh.json()["access_token"]),
    ).json()["items"]
    assert [(r["details"], r["target_type"]) for r in audited] == [({"via": "reset link"}, "user")]


def test_two_concurrent_resets_with_one_link_exactly_one_wins(site: Site) -> None:
    owner = site.acme.email
    site.http.post("/api/auth/password-reset", json={"email": owner})
    token = token_of(site.link_to(owner))
    url = f"{site.server.base}/api/auth/password-reset/complete"
    passwords = ["first racing passphrase 1", "second racing passphrase 2"]
    answers = _at_once(
        [
            lambda p=p: httpx.post(url, json={"token": token, "new_password": p}, timeout=20)
            for p in passwords
        ]
    )
    assert sorted(a.status_code for a in answers) == [200, 400], [a.text for a in answers]
    winner = passwords[[a.status_code for a in answers].index(200)]
    loser = passwords[1 - passwords.index(winner)]
    assert site.login(owner, winner).status_code == 200
    assert site.login(owner, loser).status_code == 401


def test_email_verification(site: Site) -> None:
    owner = site.acme.email
    access = site.login(owner, PASSWORD).json()["access_token"]
    assert (
        site.http.get("/api/auth/account", headers=bearer(access)).json()["email_verified_at"]
        is None
    )
    asked = site.http.post("/api/auth/verify-email/request", headers=bearer(access))
    assert asked.status_code == 202, asked.text
    url = site.link_to(owner)
    assert url.startswith(f"{site.server.base}/api/auth/verify-email?token=bpver_")
    assert site.http.get(url).json()["email"] == owner
    verified = site.http.post("/api/auth/verify-email", json={"token": token_of(url)})
    assert verified.status_code == 200, verified.text
    account = site.http.get("/api/auth/account", headers=bearer(access)).json()
    assert account["email_verified_at"] is not None
    again = site.http.post("/api/auth/verify-email", json={"token": token_of(url)})
    assert again.status_code == 400
    assert (
        site.http.post("/api/auth/verify-email", json={"token": "bpver_forged"}).status_code == 400
    )


def _reset_tasks_done(env: dict[str, str]) -> int:
    listed = run_cli("tasks", "status", "--json", env=env)
    import json

    rows = [r for r in json.loads(listed.stdout) if r["actor"] == "core.mail_password_reset"]
    # Done ones only: the last requests' tasks may still be pending or running.
    return sum(r["count"] for r in rows if r["status"] == "done")


ROUNDS = 30


def test_a_reset_request_does_not_reveal_whether_the_account_exists(site: Site) -> None:
    known, unknown = site.acme.email, "nobody@example.org"
    timings: dict[str, list[float]] = {known: [], unknown: []}
    answers: dict[str, set[tuple[int, bytes]]] = {known: set(), unknown: set()}
    with httpx.Client(base_url=site.server.base, timeout=20) as client:
        for _warm_up in range(5):
            for email in (known, unknown):
                client.post("/api/auth/password-reset", json={"email": email})
        for _round in range(ROUNDS):
            for email in (known, unknown) if _round % 2 else (unknown, known):
                started = time.perf_counter()
                response = client.post("/api/auth/password-reset", json={"email": email})
                timings[email].append(time.perf_counter() - started)
                answers[email].add((response.status_code, response.content))
    assert answers[known] == answers[unknown]
    [(status, _body)] = answers[known]
    assert status == 202
    median_known = statistics.median(timings[known])
    median_unknown = statistics.median(timings[unknown])
    print(
        f"\nreset request medians over {ROUNDS} each: known {median_known * 1000:.2f} ms, "
        f"unknown {median_unknown * 1000:.2f} ms"
    )
    # Generous: the same work either way, so the medians differ by noise only.
    assert abs(median_known - median_unknown) < max(0.005, 0.5 * min(median_known, median_unknown))
    # Every task ran (so no mail is still to come): one mail, to the account only (at most
    # one reset mail per account a minute, however many requests).
    wait_for(lambda: _reset_tasks_done(site.env) == 2 * (ROUNDS + 5), message="the reset tasks")
    wait_for(lambda: mails_to(site.data_dir, known), message="the reset mail")
    time.sleep(0.5)
    assert len(mails_to(site.data_dir, known)) == 1
    assert mails_to(site.data_dir, unknown) == []
