"""Issue 5, acceptance 4: billing webhooks delivered to a real receiver that verifies the
documented signature; retries with backoff; failures visible; tenant isolation; nothing
emitted when the caller's transaction rolls back.

The app here runs with the development settings (http and loopback allowed, no backoff, three
attempts); the SSRF refusals run with the production defaults in ``test_webhooks_ssrf.py``.
The receiver is a threaded ``http.server`` on 127.0.0.1 that checks every delivery with
:func:`backplane.billing.webhooks.verify_signature`, as a tenant's receiver would, and answers
from a per-path script of status codes.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select

from backplane.billing.webhooks import (
    INVOICE_FINALIZED,
    QUOTA_REACHED,
    InvalidSignatureError,
    verify_signature,
)
from backplane.billing.webhooks import urls as webhook_urls
from backplane.billing.webhooks.delivery import dispatch_due
from backplane.billing.webhooks.models import WebhookDelivery, WebhookEvent
from backplane.db.tenancy import bind_tenant
from backplane.settings import Settings
from backplane.tasks.models import OutboxMessage
from backplane.tasks.runtime import TaskRuntime
from tests.app_helpers import rails
from tests.conftest import make_settings
from tests.db_helpers import admin_session
from tests.identity_helpers import Seeded
from tests.waiting import wait_for

DEV_WEBHOOKS = {
    "BACKPLANE_WEBHOOKS__ALLOW_HTTP": "true",
    "BACKPLANE_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES": "true",
    "BACKPLANE_WEBHOOKS__BACKOFF_S": "0",
    "BACKPLANE_WEBHOOKS__MAX_ATTEMPTS": "3",
    "BACKPLANE_WEBHOOKS__TIMEOUT_S": "3",
    "BACKPLANE_WEBHOOKS__MAX_RESPONSE_BODY_BYTES": "64",
    "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
    "BACKPLANE_TASKS__POLL_INTERVAL_MS": "100",
}
BASE = "/api/billing/webhooks"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    problem: str | None
    status: int


@dataclass
class Receiver:
    port: int
    secrets: dict[str, str] = field(default_factory=dict)
    """Path -> the endpoint secret the receiver verifies with."""
    script: dict[str, list[int]] = field(default_factory=dict)
    """Path -> statuses to answer in turn (the last one repeats); default 200."""
    answer_body: bytes = b"ok"
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            secret = receiver.secrets.get(self.path)
            problem: str | None = None
            try:
                if secret is None:
                    raise InvalidSignatureError("no secret known for this path")
                verify_signature(secret, self.headers.get("Backplane-Signature"), body)
            except InvalidSignatureError as exc:
                problem = str(exc)
            with receiver.lock:
                script = receiver.script.get(self.path, [200])
                status = script.pop(0) if len(script) > 1 else script[0]
                if problem is not None:
                    status = 401
                receiver.received.append(
                    Received(
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                        verified=problem is None,
                        problem=problem,
                        status=status,
                    )
                )
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(receiver.answer_body)))
            self.end_headers()
            self.wfile.write(receiver.answer_body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver(port=0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- fixtures and helpers -----------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, data_dir: Path) -> Settings:
    """Development webhook settings, on SQLite and on real PostgreSQL (RLS on)."""
    env = dict(DEV_WEBHOOKS)
    if request.param == "postgres":
        env["BACKPLANE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    return make_settings(data_dir, env)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


def runtime_of(app: Litestar) -> TaskRuntime:
    runtime: TaskRuntime = rails(app).tasks
    return runtime


def dispatch(app: Litestar) -> int:
    """One run of the periodic dispatcher (the scheduler runs it once a minute)."""
    runtime = runtime_of(app)
    settings: Settings = rails(app).settings

    async def go() -> int:
        async with admin_session(settings, "test: dispatch due deliveries") as session:
            count = await dispatch_due(session, runtime.queue_for(session), settings.webhooks)
            await session.commit()
        return count

    return runtime.run(go())


def register(
    client: TestClient[Litestar],
    receiver: Receiver,
    path: str,
    headers: dict[str, str],
    **fields: Any,
) -> dict[str, Any]:
    response = client.post(BASE, json={"url": receiver.url(path), **fields}, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["secret"].startswith("whsec_")
    receiver.secrets[path] = created["secret"]
    return created


def deliveries(
    client: TestClient[Litestar], endpoint_id: str, headers: dict[str, str]
) -> list[dict[str, Any]]:
    response = client.get(f"{BASE}/{endpoint_id}/deliveries", headers=headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def settled(
    client: TestClient[Litestar],
    endpoint_id: str,
    headers: dict[str, str],
    nudge: Callable[[], object] | None = None,
) -> list[dict[str, Any]]:
    """The endpoint's deliveries, once there are some and none is pending. ``nudge`` runs
    between looks (a dispatcher run: a retry goes out only when the dispatcher runs)."""

    def finished() -> list[dict[str, Any]] | None:
        rows = deliveries(client, endpoint_id, headers)
        if rows and all(d["status"] != "pending" for d in rows):
            return rows
        if nudge is not None:
            nudge()
        return None

    return wait_for(finished, message=f"the deliveries of endpoint {endpoint_id} to settle")


def emit(
    app: Litestar, tenant: Seeded, event_type: str, data: dict[str, Any], *, commit: bool = True
) -> None:
    runtime = runtime_of(app)

    async def go() -> None:
        async with runtime.sessionmaker() as session:
            bind_tenant(session, tenant.tenant_id)
            await rails(app).events.emit(session, event_type, data)
            if commit:
                await session.commit()
            else:
                await session.rollback()

    runtime.run(go())


# -- acceptance 4 -------------------------------------------------------------------------------
def test_delivery_verifies_with_the_documented_signature(
    app: Litestar, authed: TestClient[Litestar], tenant_a: Seeded, receiver: Receiver
) -> None:
    endpoint = register(authed, receiver, "/hooks/all", tenant_a.headers)
    data = {"meter": "api.requests", "limit": 50, "used": 50, "reset_at": "2026-12-01T00:00:00Z"}
    emit(app, tenant_a, QUOTA_REACHED, data)

    rows = settled(authed, endpoint["id"], tenant_a.headers)
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in rows] == [
        ("succeeded", 1, 200)
    ]
    [got] = receiver.on("/hooks/all")
    assert got.verified, got.problem
    body = json.loads(got.body)
    assert body["type"] == QUOTA_REACHED
    assert body["data"] == data
    assert body["tenant_id"] == str(tenant_a.tenant_id)
    assert got.headers["backplane-event-id"] == body["id"] == rows[0]["event_id"]
    assert got.headers["backplane-delivery-id"] == rows[0]["id"]
    assert got.headers["content-type"] == "application/json"
    # The documented scheme, recomputed by hand: t=<unix>,v1=hex(HMAC-SHA256(secret, "t.body")).
    import hashlib
    import hmac

    header = got.headers["backplane-signature"]
    parts = dict(p.split("=", 1) for p in header.split(","))
    expected = hmac.new(
        endpoint["secret"].encode(), f"{parts['t']}.".encode() + got.body, hashlib.sha256
    ).hexdigest()
    assert parts["v1"] == expected
    assert abs(int(parts["t"]) - time.time()) < 60
    # And the helper refuses a wrong secret, a changed body and an old timestamp.
    with pytest.raises(InvalidSignatureError, match="no signature matches"):
        verify_signature("whsec_wrong", header, got.body)
    with pytest.raises(InvalidSignatureError, match="no signature matches"):
        verify_signature(endpoint["secret"], header, got.body + b" ")
    with pytest.raises(InvalidSignatureError, match="tolerance"):
        verify_signature(endpoint["secret"], header, got.body, now=time.time() + 3600)


def test_failing_receiver_gets_retries_and_then_succeeds(
    app: Litestar, authed: TestClient[Litestar], tenant_a: Seeded, receiver: Receiver
) -> None:
    receiver.script["/hooks/flaky"] = [500, 503, 200]
    endpoint = register(authed, receiver, "/hooks/flaky", tenant_a.headers)
    emit(app, tenant_a, INVOICE_FINALIZED, {"invoice_id": "inv_1", "total": 1234})

    rows = settled(authed, endpoint["id"], tenant_a.headers, nudge=lambda: dispatch(app))
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in rows] == [
        ("succeeded", 3, 200)
    ]
    got = receiver.on("/hooks/flaky")
    assert [r.status for r in got] == [500, 503, 200]
    assert all(r.verified for r in got)
    # Each retry is the same event, signed afresh.
    assert len({json.loads(r.body)["id"] for r in got}) == 1


def test_permanent_failure_ends_failed_with_visible_history_and_can_be_retried(
    app: Litestar, authed: TestClient[Litestar], tenant_a: Seeded, receiver: Receiver
) -> None:
    receiver.script["/hooks/down"] = [500]
    receiver.answer_body = b"x" * 500
    endpoint = register(authed, receiver, "/hooks/down", tenant_a.headers)
    emit(app, tenant_a, QUOTA_REACHED, {"meter": "api.requests"})

    rows = settled(authed, endpoint["id"], tenant_a.headers, nudge=lambda: dispatch(app))
    [delivery] = rows
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 3  # webhooks.max_attempts
    assert delivery["last_status_code"] == 500
    assert delivery["last_error"] == "HTTP 500"
    assert delivery["last_response_body"] == "x" * 64  # webhooks.max_response_body_bytes
    assert delivery["completed_at"] is not None
    assert delivery["next_attempt_at"] is None
    assert len(receiver.on("/hooks/down")) == 3
    assert dispatch(app) == 0  # nothing more is attempted
    failed = authed.get(
        f"{BASE}/{endpoint['id']}/deliveries?status=failed", headers=tenant_a.headers
    )
    assert [d["id"] for d in failed.json()] == [delivery["id"]]

    receiver.script["/hooks/down"] = [200]
    retried = authed.post(f"{BASE}/deliveries/{delivery['id']}/retry", headers=tenant_a.headers)
    assert retried.status_code == 202, retried.text
    again = settled(authed, endpoint["id"], tenant_a.headers)
    assert again[0]["status"] == "succeeded"
    refused = authed.post(f"{BASE}/deliveries/{delivery['id']}/retry", headers=tenant_a.headers)
    assert refused.status_code == 409
    assert "only failed deliveries" in refused.text


def test_redirects_are_not_followed(
    app: Litestar, authed: TestClient[Litestar], tenant_a: Seeded, receiver: Receiver
) -> None:
    receiver.script["/hooks/moved"] = [302]
    endpoint = register(authed, receiver, "/hooks/moved", tenant_a.headers)
    sent = authed.post(f"{BASE}/{endpoint['id']}/test", headers=tenant_a.headers)
    assert sent.status_code == 202, sent.text
    rows = settled(authed, endpoint["id"], tenant_a.headers, nudge=lambda: dispatch(app))
    assert rows[0]["status"] == "failed"
    assert "redirects are not followed" in rows[0]["last_error"]


def test_rolled_back_transaction_emits_nothing(
    app: Litestar, authed: TestClient[Litestar], tenant_a: Seeded, receiver: Receiver
) -> None:
    endpoint = register(authed, receiver, "/hooks/rollback", tenant_a.headers)
    emit(app, tenant_a, QUOTA_REACHED, {"n": 1}, commit=False)
    runtime = runtime_of(app)

    async def counts() -> tuple[int, int, int]:
        async with runtime.sessionmaker() as session:
            bind_tenant(session, tenant_a.tenant_id)
            events = await session.scalar(select(func.count()).select_from(WebhookEvent))
            sent = await session.scalar(select(func.count()).select_from(WebhookDelivery))
            tasks = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.actor == "core.deliver_webhook")
            )
        return events or 0, sent or 0, tasks or 0

    assert runtime.run(counts()) == (0, 0, 0)
    time.sleep(0.3)
    assert receiver.on("/hooks/rollback") == []
    emit(app, tenant_a, QUOTA_REACHED, {"n": 2})
    assert runtime.run(counts()) == (1, 1, 1)
    settled(authed, endpoint["id"], tenant_a.headers)
    [got] = receiver.on("/hooks/rollback")
    assert json.loads(got.body)["data"] == {"n": 2}


def test_subscriptions_test_events_and_disabled_endpoints(
    app: Litestar, authed: TestClient[Litestar], tenant_a: Seeded, receiver: Receiver
) -> None:
    invoices = register(
        authed, receiver, "/hooks/invoices", tenant_a.headers, event_types=[INVOICE_FINALIZED]
    )
    disabled = register(authed, receiver, "/hooks/off", tenant_a.headers, enabled=False)
    emit(app, tenant_a, QUOTA_REACHED, {"meter": "x"})
    assert deliveries(authed, invoices["id"], tenant_a.headers) == []
    assert deliveries(authed, disabled["id"], tenant_a.headers) == []

    sent = authed.post(f"{BASE}/{invoices['id']}/test", headers=tenant_a.headers)
    assert sent.status_code == 202, sent.text
    assert sent.json()["event_type"] == "webhook.test"
    rows = settled(authed, invoices["id"], tenant_a.headers)
    assert rows[0]["status"] == "succeeded"
    [got] = receiver.on("/hooks/invoices")
    assert got.verified
    assert json.loads(got.body)["type"] == "webhook.test"

    enabled = authed.patch(
        f"{BASE}/{disabled['id']}", json={"enabled": True}, headers=tenant_a.headers
    )
    assert enabled.status_code == 200
    assert enabled.json()["enabled"] is True
    emit(app, tenant_a, QUOTA_REACHED, {"meter": "y"})
    settled(authed, disabled["id"], tenant_a.headers)
    assert [json.loads(r.body)["data"] for r in receiver.on("/hooks/off")] == [{"meter": "y"}]


def test_secret_is_shown_once_and_rotation_replaces_it(
    app: Litestar, authed: TestClient[Litestar], tenant_a: Seeded, receiver: Receiver
) -> None:
    endpoint = register(authed, receiver, "/hooks/rotate", tenant_a.headers)
    old = endpoint["secret"]
    listed = authed.get(BASE, headers=tenant_a.headers)
    one = authed.get(f"{BASE}/{endpoint['id']}", headers=tenant_a.headers)
    for response in (listed, one):
        assert response.status_code == 200
        assert old not in response.text
        assert 'secret"' not in response.text
    rotated = authed.post(f"{BASE}/{endpoint['id']}/rotate-secret", headers=tenant_a.headers)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != old
    assert new.startswith("whsec_")
    receiver.secrets["/hooks/rotate"] = new
    authed.post(f"{BASE}/{endpoint['id']}/test", headers=tenant_a.headers)
    settled(authed, endpoint["id"], tenant_a.headers)
    [got] = receiver.on("/hooks/rotate")
    assert got.verified
    with pytest.raises(InvalidSignatureError):
        verify_signature(old, got.headers["backplane-signature"], got.body)


def test_delivery_connects_to_the_checked_address_and_keeps_the_host_name(
    app: Litestar,
    authed: TestClient[Litestar],
    tenant_a: Seeded,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lookups: list[str] = []

    async def fake_resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"] if host == "hooks.acme.test" else []

    monkeypatch.setattr(webhook_urls, "resolve", fake_resolve)
    path = "/hooks/pinned"
    response = authed.post(
        BASE,
        json={"url": receiver.url(path, host="hooks.acme.test")},
        headers=tenant_a.headers,
    )
    assert response.status_code == 201, response.text
    receiver.secrets[path] = response.json()["secret"]
    authed.post(f"{BASE}/{response.json()['id']}/test", headers=tenant_a.headers)
    rows = settled(authed, response.json()["id"], tenant_a.headers)
    assert rows[0]["status"] == "succeeded", rows
    [got] = receiver.on(path)
    assert got.headers["host"] == f"hooks.acme.test:{receiver.port}"
    assert lookups == ["hooks.acme.test", "hooks.acme.test"]  # registration, then delivery


def test_tenants_see_and_touch_only_their_own_webhooks(
    app: Litestar,
    client: TestClient[Litestar],
    tenant_a: Seeded,
    tenant_b: Seeded,
    receiver: Receiver,
) -> None:
    endpoint = register(client, receiver, "/hooks/a", tenant_a.headers)
    client.post(f"{BASE}/{endpoint['id']}/test", headers=tenant_a.headers)
    [delivery] = settled(client, endpoint["id"], tenant_a.headers)
    as_b = tenant_b.headers
    assert client.get(BASE, headers=as_b).json() == []
    for method, path, body in [
        ("GET", f"{BASE}/{endpoint['id']}", None),
        ("PATCH", f"{BASE}/{endpoint['id']}", {"enabled": False}),
        ("DELETE", f"{BASE}/{endpoint['id']}", None),
        ("POST", f"{BASE}/{endpoint['id']}/rotate-secret", None),
        ("POST", f"{BASE}/{endpoint['id']}/test", None),
        ("GET", f"{BASE}/{endpoint['id']}/deliveries", None),
        ("GET", f"{BASE}/deliveries/{delivery['id']}", None),
        ("POST", f"{BASE}/deliveries/{delivery['id']}/retry", None),
    ]:
        kwargs: dict[str, Any] = {"headers": as_b}
        if body is not None:
            kwargs["json"] = body
        answer = client.request(method, path, **kwargs)
        assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
    # B's events reach only B's endpoints.
    emit(app, tenant_b, QUOTA_REACHED, {"meter": "b"})
    time.sleep(0.3)
    assert len(receiver.on("/hooks/a")) == 1
    mine = client.get(f"{BASE}/{endpoint['id']}", headers=tenant_a.headers).json()
    assert mine["enabled"] is True


def test_registration_validates_event_types_and_limits(
    authed: TestClient[Litestar], tenant_a: Seeded, receiver: Receiver
) -> None:
    headers = tenant_a.headers
    unknown = authed.post(
        BASE, json={"url": receiver.url("/x"), "event_types": ["invoice.paid"]}, headers=headers
    )
    assert unknown.status_code == 422
    assert "invoice.paid" in unknown.text
    scheme = authed.post(BASE, json={"url": "ftp://127.0.0.1/x"}, headers=headers)
    assert scheme.status_code == 422
    assert "must use https" in scheme.text
    creds = authed.post(BASE, json={"url": "http://u:p@127.0.0.1/x"}, headers=headers)
    assert creds.status_code == 422
    assert "credentials" in creds.text
    missing = authed.get(f"{BASE}/{uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404


def test_members_without_the_permission_are_refused(
    client: TestClient[Litestar], tenant_a: Seeded
) -> None:
    key = client.post(
        "/api/apikeys", json={"name": "viewer", "role": "viewer"}, headers=tenant_a.headers
    )
    assert key.status_code == 201, key.text
    viewer = {"Authorization": f"Bearer {key.json()['key']}"}
    answer = client.get(BASE, headers=viewer)
    assert answer.status_code == 403
    assert "billing.webhooks.manage" in answer.text


# -- platform events: plugins add types, webhooks are one subscriber ----------------------------
def test_hook_register_event_types(
    authed: TestClient[Litestar], tenant_a: Seeded, receiver: Receiver
) -> None:
    """kitchen_sink registers ``kitchen_sink.note_created`` and emits it on every note: an
    endpoint may subscribe to it (an unregistered name is refused), and receives it signed."""
    refused = authed.post(
        BASE, json={"url": receiver.url("/x"), "event_types": ["kitchen_sink.nope"]}
    )
    assert refused.status_code == 422
    assert "kitchen_sink.note_created" in refused.json()["detail"]
    endpoint = register(
        authed,
        receiver,
        "/hooks/notes",
        tenant_a.headers,
        event_types=["kitchen_sink.note_created"],
    )
    quiet = register(
        authed, receiver, "/hooks/quota", tenant_a.headers, event_types=[QUOTA_REACHED]
    )
    created = authed.post("/api/kitchen_sink/notes", json={"body": "heard"})
    assert created.status_code == 201, created.text

    [row] = settled(authed, endpoint["id"], tenant_a.headers)
    assert (row["status"], row["event_type"]) == ("succeeded", "kitchen_sink.note_created")
    [got] = receiver.on("/hooks/notes")
    assert got.verified, got.problem
    assert json.loads(got.body)["data"] == {"id": created.json()["id"], "body": "heard"}
    assert deliveries(authed, quiet["id"], tenant_a.headers) == []


def test_hook_event_emitted(authed: TestClient[Litestar], tenant_a: Seeded) -> None:
    """Subscribers hear every event in the emitter's transaction, each through its own
    kernel view bound to the event's tenant."""
    from bp_sample_kitchen_sink import plugin as kitchen_sink

    kitchen_sink.EVENTS.clear()
    assert authed.post("/api/kitchen_sink/notes", json={"body": "one"}).status_code == 201
    [(kernel, event)] = [e for name, e in kitchen_sink.EVENTS if name == "event_emitted"]
    assert (event.type, event.tenant_id) == ("kitchen_sink.note_created", tenant_a.tenant_id)
    assert kernel.tenant_id == tenant_a.tenant_id
    assert kernel.plugin == "kitchen_sink"
