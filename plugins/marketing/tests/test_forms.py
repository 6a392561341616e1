"""Issue 23, forms: hosted signup forms and their JSON API with double opt-in through the
kernel's mail service (a real SMTP server, aiosmtpd, gets the confirmation), a honeypot, rate
limits, fields mapped to the contact's name and attributes, lists and tags; the consent is
recorded with its source and time only on confirmation; admin CRUD with permissions; tenant
isolation of forms and tokens. SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from campaign_helpers import Sink, path_of, smtp_environ, smtp_sink
from litestar import Litestar
from litestar.testing import TestClient
from marketing_helpers import CONTACTS, all_contacts, define, environ_for, make_list
from sqlalchemy import update

from backplane.testing import run_in_tenant, run_tasks, seed_tenant

FORMS = "/api/marketing/forms"
LINK = re.compile(r"https://mail\.acme\.test/api/marketing/f/[0-9a-f-]{36}/confirm/[\w-]+")


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    with smtp_sink() as box:
        yield box


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path, sink: Sink) -> dict[str, str]:
    return (
        environ_for(request, tmp_path)
        | smtp_environ(sink)
        | {
            "BACKPLANE_PLUGIN__MARKETING__FORM_SUBMISSIONS_PER_IP_PER_HOUR": "8",
            "BACKPLANE_PLUGIN__MARKETING__FORM_CONFIRMATIONS_PER_ADDRESS_PER_DAY": "2",
            # a webhook endpoint subscribed to marketing.form_submitted (never reached)
            "BACKPLANE_WEBHOOKS__ALLOW_HTTP": "true",
            "BACKPLANE_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES": "true",
        }
    )


def make_form(
    client: TestClient[Litestar], name: str = "newsletter", **extra: Any
) -> dict[str, Any]:
    define(client, "company", "string") if name == "newsletter" else None
    body = {
        "name": name,
        "title": "Our newsletter",
        "intro": "Monthly <news>",
        "fields": [
            {"name": "first", "label": "Your name", "maps_to": "name", "required": True},
            {"name": "firm", "label": "Company", "maps_to": "attribute", "attribute": "company"},
        ],
        "tags": ["newsletter"],
        **extra,
    }
    made = client.post(FORMS, json=body)
    assert made.status_code == 201, made.text
    form: dict[str, Any] = made.json()
    return form


def confirmation(sink: Sink, before: int, to: str) -> str:
    """The confirmation link of the one new message, sent to ``to``."""
    sink.wait_for(before + 1)
    messages = sink.messages()[before:]
    assert len(messages) == 1
    message = messages[0]
    assert str(message["To"]) == to
    assert "List-Unsubscribe" not in message
    found = LINK.findall(message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert len(found) == 1, message
    return str(found[0])


def contact_by_email(client: TestClient[Litestar], email: str) -> dict[str, Any] | None:
    return next((c for c in all_contacts(client) if c["email"] == email), None)


def test_double_opt_in_journey(
    backplane_client: TestClient[Litestar], backplane_tenant: Any, sink: Sink
) -> None:
    client = backplane_client
    list_id = make_list(client, "Monthly")
    form = make_form(client, list_ids=[list_id])
    page = client.get(path_of(form["url"]))
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none'
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert 'name="email"' in page.text
    assert 'name="first"' in page.text
    assert 'name="website"' in page.text  # the honeypot
    assert "Monthly &lt;news&gt;" in page.text  # escaped

    before = len(sink.received)
    sent = client.post(
        path_of(form["submit_url"]),
        json={"email": " Ann@Example.ORG ", "first": "Ann Smith", "firm": "Acme", "website": ""},
    )
    assert sent.status_code == 202, sent.text
    assert sent.json()["status"] == "pending"
    assert contact_by_email(client, "ann@example.org") is None  # nothing before confirmation
    run_tasks(client)
    link = confirmation(sink, before, "ann@example.org")
    assert f"/f/{backplane_tenant.tenant_id}/" in link

    shown = client.get(path_of(link))  # a scanner following the link changes nothing
    assert shown.status_code == 200
    assert '<form method="post">' in shown.text
    assert contact_by_email(client, "ann@example.org") is None

    hook = client.post(
        "/api/billing/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "event_types": ["marketing.form_submitted"]},
    )
    assert hook.status_code == 201, hook.text
    started = datetime.now(UTC)
    confirmed = client.post(path_of(link))
    assert confirmed.status_code == 200, confirmed.text
    contact = contact_by_email(client, "ann@example.org")
    assert contact is not None
    assert contact["name"] == "Ann Smith"
    assert contact["attributes"] == {"company": "Acme"}
    assert contact["tags"] == ["newsletter"]
    assert [(s["list_id"], s["status"]) for s in contact["lists"]] == [(list_id, "subscribed")]
    consent = contact["consent"]
    assert (consent["status"], consent["source"]) == ("granted", "form:newsletter")
    at = datetime.fromisoformat(consent["at"].replace("Z", "+00:00"))
    assert at >= started - timedelta(seconds=1)

    again = client.post(path_of(link))  # confirming twice does it once
    assert again.status_code == 200
    events = client.get(f"{CONTACTS}/{contact['id']}/events").json()
    items = events["items"] if isinstance(events, dict) else events
    assert [e["type"] for e in items].count("form_submitted") == 1
    stats = client.get(f"{FORMS}/{form['id']}/stats").json()
    assert stats == {"pending": 0, "confirmed": 1}
    emitted = client.get(f"/api/billing/webhooks/{hook.json()['id']}/deliveries").json()
    assert [d["event_type"] for d in emitted] == ["marketing.form_submitted"]


def test_hosted_page_posts_errors_and_honeypot(
    backplane_client: TestClient[Litestar], sink: Sink
) -> None:
    client = backplane_client
    form = make_form(client)
    url = path_of(form["url"])
    missing = client.post(url, data={"email": "bob@example.org", "first": ""})
    assert missing.status_code == 422
    assert "Your name is required" in missing.text
    assert 'value="bob@example.org"' in missing.text  # what was entered stays
    invalid = client.post(url, data={"email": "not an address", "first": "Bob"})
    assert invalid.status_code == 422
    assert 'class="error"' in invalid.text
    before = len(sink.received)
    trapped = client.post(url, data={"email": "bot@example.org", "first": "B", "website": "x"})
    assert trapped.status_code == 200
    assert "check your inbox" in trapped.text
    trapped_json = client.post(
        f"{url}/submissions",
        json={"email": "bot2@example.org", "first": "B", "website": "http://x"},
    )
    assert trapped_json.status_code == 202
    ok = client.post(url, data={"email": "bob@example.org", "first": "Bob"})
    assert ok.status_code == 200
    assert "check your inbox" in ok.text
    run_tasks(client)
    assert confirmation(sink, before, "bob@example.org")  # the bots got nothing
    assert client.get(f"{FORMS}/{form['id']}/stats").json() == {"pending": 1, "confirmed": 0}
    for body, reason in (
        ({"email": "x@example.org", "first": "X", "firm": ["a"]}, "must be a string"),
        ({"first": "X"}, "email is required"),
    ):
        refused = client.post(f"{url}/submissions", json=body)
        assert refused.status_code == 422, refused.text
        assert reason in refused.text, refused.text
    json_type = {"Content-Type": "application/json"}
    not_an_object = client.post(f"{url}/submissions", content=b"[1,2]", headers=json_type)
    assert not_an_object.status_code == 400


def test_rate_limits_per_address_and_per_client(
    backplane_client: TestClient[Litestar], sink: Sink
) -> None:
    client = backplane_client
    form = make_form(client)
    url = path_of(form["submit_url"])
    body = {"email": "eve@example.org", "first": "Eve"}
    assert [client.post(url, json=body).status_code for _ in range(2)] == [202, 202]
    third = client.post(url, json=body)  # two confirmation mails a day per address
    assert third.status_code == 429, third.text
    assert int(third.headers["retry-after"]) > 0
    assert "at most 2 per day" in third.json()["detail"]
    other = client.post(url, json={"email": "fay@example.org", "first": "Fay"})
    assert other.status_code == 202
    # eight submissions an hour from one client address, whatever they are
    assert client.post(url, json={"email": "nope"}).status_code == 422
    for person in ("gus", "ida", "jon"):
        answer = client.post(url, json={"email": f"{person}@example.org", "first": "G"})
        assert answer.status_code == 202
    blocked = client.post(url, json={"email": "hal@example.org", "first": "H"})
    assert blocked.status_code == 429
    page = client.post(path_of(form["url"]), data={"email": "hal@example.org", "first": "H"})
    assert page.status_code == 429
    assert "too many submissions from your address: at most 8 per hour" in page.text


def test_a_form_or_token_of_one_tenant_never_acts_on_another(
    backplane_client: TestClient[Litestar], backplane_tenant: Any, sink: Sink
) -> None:
    client = backplane_client
    form = make_form(client)
    before = len(sink.received)
    sent = client.post(path_of(form["submit_url"]), json={"email": "ivy@example.org", "first": "I"})
    assert sent.status_code == 202
    run_tasks(client)
    link = path_of(confirmation(sink, before, "ivy@example.org"))
    other = seed_tenant(client, "globex")
    a, b = str(backplane_tenant.tenant_id), str(other.tenant_id)
    swapped = {
        "page": path_of(form["url"]).replace(a, b),
        "submit": path_of(form["submit_url"]).replace(a, b),
        "link": link.replace(a, b),
    }
    assert client.get(swapped["page"]).status_code == 404
    assert (
        client.post(swapped["submit"], json={"email": "x@example.org", "first": "X"}).status_code
        == 404
    )
    assert client.get(swapped["link"]).status_code == 404
    assert client.post(swapped["link"]).status_code == 404
    unknown = link.replace(a, "00000000-0000-0000-0000-000000000000")
    assert client.post(unknown).status_code == 404
    client.headers.update(other.headers)
    assert client.get(FORMS).json() == []
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"title": "x"}} if method == "patch" else {}
        answer = getattr(client, method)(f"{FORMS}/{form['id']}", **kwargs)
        assert answer.status_code == 404, (method, answer.text)
    assert client.get(f"{FORMS}/{form['id']}/stats").status_code == 404
    assert all_contacts(client) == []
    client.headers.update(backplane_tenant.headers)
    assert contact_by_email(client, "ivy@example.org") is None  # nothing was confirmed
    assert client.post(link).status_code == 200  # the token works in its own tenant
    assert contact_by_email(client, "ivy@example.org") is not None


def test_admin_crud_permissions_and_bad_definitions(
    backplane_client: TestClient[Litestar], backplane_client_as: Any
) -> None:
    client = backplane_client
    form = make_form(client)
    member = backplane_client_as("member")
    assert member.get(FORMS).status_code == 200
    assert member.post(FORMS, json={"name": "x", "title": "X"}).status_code == 403
    assert member.patch(f"{FORMS}/{form['id']}", json={"title": "X"}).status_code == 403
    assert member.delete(f"{FORMS}/{form['id']}").status_code == 403
    bad = [
        (
            {"fields": [{"name": "x", "label": "X", "maps_to": "attribute", "attribute": "nope"}]},
            422,
            "unknown attribute",
        ),
        ({"fields": [{"name": "website", "label": "W", "maps_to": "name"}]}, 422, "reserved"),
        ({"fields": [{"name": "Bad Name", "label": "W", "maps_to": "name"}]}, 400, ""),
        ({"page_template": "<html>{{ title }}</html>"}, 422, "form_html"),
        ({"confirm_text": "{% if %}"}, 422, "does not parse"),
        ({"list_ids": ["00000000-0000-0000-0000-000000000001"]}, 404, "no list"),
        ({"name": "newsletter"}, 409, "exists"),
    ]
    for extra, status, words in bad:
        body = {"name": "other", "title": "Other", **extra}
        refused = client.post(FORMS, json=body)
        assert refused.status_code == status, (extra, refused.text)
        assert words in refused.text, refused.text
    changed = client.patch(
        f"{FORMS}/{form['id']}",
        json={"title": "Renamed", "page_template": "<main>{{ form.title }}!{{ form_html }}</main>"},
    )
    assert changed.status_code == 200, changed.text
    page = client.get(path_of(form["url"]))
    assert page.text.startswith("<main>Renamed!<form")
    assert 'name="website"' in page.text
    hostile = client.patch(
        f"{FORMS}/{form['id']}", json={"page_template": "{{ ''.__class__.__mro__ }}{{ form_html }}"}
    )
    assert hostile.status_code == 200
    assert client.get(path_of(form["url"])).status_code == 422  # refused by the sandbox
    closed = client.patch(f"{FORMS}/{form['id']}", json={"active": False, "page_template": ""})
    assert closed.status_code == 200
    assert client.get(path_of(form["url"])).status_code == 404
    assert client.delete(f"{FORMS}/{form['id']}").status_code == 204
    assert client.get(f"{FORMS}/{form['id']}").status_code == 404


def test_an_expired_link_confirms_nothing(
    backplane_client: TestClient[Litestar], backplane_tenant: Any, sink: Sink
) -> None:
    from backplane_marketing.forms.models import FormSubmission

    client = backplane_client
    form = make_form(client)
    before = len(sink.received)
    sent = client.post(path_of(form["submit_url"]), json={"email": "old@example.org", "first": "O"})
    assert sent.status_code == 202
    run_tasks(client)
    link = path_of(confirmation(sink, before, "old@example.org"))

    async def expire(kernel: Any) -> None:
        await kernel.db.execute(
            update(FormSubmission).values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )

    run_in_tenant(client, backplane_tenant, expire, plugin="marketing")
    assert client.get(link).status_code == 410
    assert client.post(link).status_code == 410
    assert contact_by_email(client, "old@example.org") is None


def test_erasure_removes_a_pending_sign_up(
    backplane_client: TestClient[Litestar], sink: Sink
) -> None:
    """A sign-up not yet confirmed holds the address (no contact yet): a person's export shows
    it and their erasure deletes it, so the link confirms nothing afterwards."""
    client = backplane_client
    form = make_form(client)
    before = len(sink.received)
    sent = client.post(path_of(form["submit_url"]), json={"email": "Zoe@example.org", "first": "Z"})
    assert sent.status_code == 202
    run_tasks(client)
    link = path_of(confirmation(sink, before, "zoe@example.org"))
    exported = client.post("/api/privacy/export", json={"email": "zoe@example.org"})
    assert exported.status_code == 200
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        rows = archive.read("marketing/marketing_form_submissions.jsonl").decode().splitlines()
    assert [json.loads(r)["email"] for r in rows] == ["zoe@example.org"]
    erased = client.post("/api/privacy/erase", json={"email": "zoe@example.org"})
    assert erased.status_code == 200, erased.text
    assert erased.json()["plugins"]["marketing"] == {"marketing_form_submissions": 1}
    assert client.post(link).status_code == 404
    assert contact_by_email(client, "zoe@example.org") is None


def test_a_confirmed_sign_up_fires_the_automations_listening(
    backplane_client: TestClient[Litestar], sink: Sink
) -> None:
    """Confirming is the form's submission for automations (``form_submitted``), and the tags
    it adds fire ``tag_added``; a pending sign-up fires nothing."""
    client = backplane_client
    form = make_form(client)
    for trigger, tag in (
        ({"type": "form_submitted", "form_id": form["id"]}, "via-form"),
        ({"type": "tag_added", "tag": "newsletter"}, "via-tag"),
    ):
        made = client.post(
            "/api/marketing/automations",
            json={
                "name": tag,
                "status": "active",
                "trigger": trigger,
                "steps": [{"id": "tag", "type": "add_tag", "tag": tag}],
            },
        )
        assert made.status_code == 201, made.text
    before = len(sink.received)
    sent = client.post(path_of(form["submit_url"]), json={"email": "bo@example.org", "first": "Bo"})
    assert sent.status_code == 202, sent.text
    run_tasks(client)
    assert contact_by_email(client, "bo@example.org") is None
    link = confirmation(sink, before, "bo@example.org")
    assert client.post(path_of(link)).status_code == 200
    run_tasks(client)
    contact = contact_by_email(client, "bo@example.org")
    assert contact is not None
    assert sorted(contact["tags"]) == ["newsletter", "via-form", "via-tag"]


def test_sign_ups_never_confirmed_are_deleted_days_after_their_link_expired(
    backplane_client: TestClient[Litestar], backplane_tenant: Any, sink: Sink
) -> None:
    """The daily purge deletes a pending sign-up whose link expired more than
    ``form_keep_expired_days`` (7) ago, and keeps one expired yesterday (its link still
    answers 410) and a confirmed one (the consent's record)."""
    from sqlalchemy import select

    from backplane_marketing.forms.models import FormSubmission
    from backplane_marketing.forms.service import purge_expired_sign_ups

    client = backplane_client
    form = make_form(client)
    links = {}
    for email in ("old@example.org", "recent@example.org", "kept@example.org"):
        before = len(sink.received)
        sent = client.post(path_of(form["submit_url"]), json={"email": email, "first": "A"})
        assert sent.status_code == 202, sent.text
        run_tasks(client)
        links[email] = path_of(confirmation(sink, before, email))
    assert client.post(links["kept@example.org"]).status_code == 200
    now = datetime.now(UTC)

    async def age(kernel: Any) -> None:
        for email, ago in (("old@example.org", 8), ("recent@example.org", 1)):
            await kernel.db.execute(
                update(FormSubmission)
                .where(FormSubmission.email == email)
                .values(expires_at=now - timedelta(days=ago))
            )
        await kernel.db.execute(
            update(FormSubmission)
            .where(FormSubmission.email == "kept@example.org")
            .values(expires_at=now - timedelta(days=30))
        )

    async def emails(kernel: Any) -> set[str]:
        return set(await kernel.db.scalars(select(FormSubmission.email)))

    run_in_tenant(client, backplane_tenant, age, plugin="marketing")
    run_in_tenant(client, backplane_tenant, purge_expired_sign_ups, plugin="marketing")
    left = run_in_tenant(client, backplane_tenant, emails, plugin="marketing")
    assert left == {"recent@example.org", "kept@example.org"}
    assert client.post(links["old@example.org"]).status_code == 404
    assert client.post(links["recent@example.org"]).status_code == 410
