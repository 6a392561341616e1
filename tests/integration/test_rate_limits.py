"""Issue 15, item 9: expensive per-tenant actions are rate-limited (``backplane.ratelimit``).

Webhook test sends were unthrottled (100 accepted and delivered in 2.2 s), and so were
delivery retries, endpoint URL checks (a DNS lookup of a name the tenant chose) and model
uploads (a trial run in a subprocess each). Each is now counted per (tenant, action) against a
``limits`` setting; beyond it the answer is 429 with ``Retry-After`` and a message naming the
limit, other tenants are unaffected, and an unreachable shared counter store refuses (503)
rather than letting the action through unthrottled.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.app import create_app
from backplane.loading import load_plugins
from backplane.models import resource
from backplane.ratelimit import rate_limit
from backplane.settings import SettingsError
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import Seeded, seed_tenant
from tests.integration.test_webhooks import (
    BASE,
    DEV_WEBHOOKS,
    Receiver,
    dispatch,
    register,
    running_receiver,
    settled,
)
from tests.waiting import wait_for

IRIS = resource("iris_classifier.onnx").read_bytes()


@dataclass
class Stack:
    app: Litestar
    client: TestClient[Litestar]
    a: Seeded
    b: Seeded
    receiver: Receiver

    def test_send(self, who: Seeded, endpoint: dict[str, Any]) -> Any:
        return self.client.post(f"{BASE}/{endpoint['id']}/test", headers=who.headers)

    def upload(self, who: Seeded, name: str, data: bytes) -> Any:
        return self.client.post(
            "/api/models",
            headers=who.headers,
            files={"file": ("model.onnx", data, "application/octet-stream")},
            data={"name": name},
        )


@contextmanager
def stack(data_dir: Path, **limits: int) -> Iterator[Stack]:
    """An app with development webhook settings (a receiver on loopback) and ``limits``."""
    env = {**DEV_WEBHOOKS, "BACKPLANE_PLUGINS": "kitchen_sink"}
    env.update({f"BACKPLANE_LIMITS__{name.upper()}": str(value) for name, value in limits.items()})
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrate(plugins)
    a, b = seed_tenant(plugins, "acme"), seed_tenant(plugins, "globex")
    app = create_app(settings, plugins=plugins)
    with running_receiver() as receiver, TestClient(app) as client:
        yield Stack(app, client, a, b, receiver)


def assert_refused(answer: Any, calls: str, limit: int, window_s: int) -> None:
    assert answer.status_code == 429, answer.text
    retry_after = int(answer.headers["Retry-After"])
    assert 0 < retry_after <= window_s
    period = "minute" if window_s == 60 else "hour"
    assert answer.json()["detail"] == (
        f"too many {calls}: this tenant may make {limit} per {period}; try again in {retry_after} s"
    )


def test_the_eleventh_test_send_in_a_minute_is_refused_for_that_tenant_only(
    data_dir: Path,
) -> None:
    with stack(data_dir) as s:  # the default: 10 a minute
        mine = register(s.client, s.receiver, "/hooks/a", s.a.headers)
        theirs = register(s.client, s.receiver, "/hooks/b", s.b.headers)
        sent = [s.test_send(s.a, mine) for _ in range(10)]
        assert [r.status_code for r in sent] == [202] * 10, [r.text for r in sent]
        assert_refused(s.test_send(s.a, mine), "webhook test sends", 10, 60)
        assert s.test_send(s.b, theirs).status_code == 202
        rows = settled(s.client, mine["id"], s.a.headers)
        assert len(rows) == 10  # the refused send created no delivery
        wait_for(lambda: len(s.receiver.on("/hooks/a")) == 10, message="10 requests received")


def test_delivery_retries_are_limited(data_dir: Path) -> None:
    with stack(data_dir, webhook_retries_per_minute=1) as s:
        s.receiver.script["/hooks/down"] = [500]
        endpoint = register(s.client, s.receiver, "/hooks/down", s.a.headers)
        s.test_send(s.a, endpoint)
        [failed] = settled(s.client, endpoint["id"], s.a.headers, nudge=lambda: dispatch(s.app))
        assert failed["status"] == "failed"
        retry = f"{BASE}/deliveries/{failed['id']}/retry"
        assert s.client.post(retry, headers=s.a.headers).status_code == 202
        settled(s.client, endpoint["id"], s.a.headers, nudge=lambda: dispatch(s.app))
        assert_refused(s.client.post(retry, headers=s.a.headers), "webhook delivery retries", 1, 60)
        # Another tenant's retry budget is its own (its call reaches the handler: 404).
        assert s.client.post(retry, headers=s.b.headers).status_code == 404


def test_url_checks_are_limited_and_other_changes_are_not(data_dir: Path) -> None:
    with stack(data_dir, webhook_url_checks_per_minute=2) as s:
        endpoint = register(s.client, s.receiver, "/hooks/a", s.a.headers)  # check 1
        path = f"{BASE}/{endpoint['id']}"
        moved = s.client.patch(path, json={"url": s.receiver.url("/b")}, headers=s.a.headers)
        assert moved.status_code == 200, moved.text  # check 2
        for enabled in (False, True, False):  # no URL: nothing to resolve, not counted
            toggled = s.client.patch(path, json={"enabled": enabled}, headers=s.a.headers)
            assert toggled.status_code == 200, toggled.text
        again = s.client.patch(path, json={"url": s.receiver.url("/c")}, headers=s.a.headers)
        assert_refused(again, "webhook URL checks", 2, 60)
        created = s.client.post(BASE, json={"url": s.receiver.url("/d")}, headers=s.a.headers)
        assert_refused(created, "webhook URL checks", 2, 60)
        kept = s.client.get(BASE, headers=s.a.headers).json()
        assert [e["url"] for e in kept] == [s.receiver.url("/b")]
        register(s.client, s.receiver, "/hooks/b", s.b.headers)


def test_model_uploads_are_limited_counting_refused_ones(data_dir: Path) -> None:
    with stack(data_dir, model_uploads_per_hour=2) as s:
        refused = s.upload(s.a, "broken", b"not a model")
        assert refused.status_code == 422, refused.text
        assert s.upload(s.a, "iris-1", IRIS).status_code == 201
        assert_refused(s.upload(s.a, "iris-2", IRIS), "model uploads", 2, 3600)
        assert s.client.get("/api/models/iris-2", headers=s.a.headers).status_code == 404
        assert s.upload(s.b, "iris-2", IRIS).status_code == 201


def test_an_unreachable_counter_store_refuses_rather_than_lets_through(data_dir: Path) -> None:
    """With ``redis_url`` set, counts are shared through Redis; if it does not answer, the
    expensive action is refused with 503, not run unthrottled. (Nothing listens on port 9.)"""
    env = {**DEV_WEBHOOKS, "BACKPLANE_REDIS_URL": "redis://127.0.0.1:9/0"}
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrate(plugins)
    tenant = seed_tenant(plugins, "acme")
    with TestClient(create_app(settings, plugins=plugins)) as client:
        answer = client.post(BASE, json={"url": "http://127.0.0.1:9/hook"}, headers=tenant.headers)
        assert answer.status_code == 503, answer.text
        assert answer.json()["detail"] == "the rate limit store is unavailable; try again later"
        assert client.get(BASE, headers=tenant.headers).json() == []


def test_limits_are_validated_settings_and_actions_are_known() -> None:
    with pytest.raises(SettingsError, match="BACKPLANE_LIMITS__MODEL_UPLOADS_PER_HOUR"):
        make_settings(Path("var"), {"BACKPLANE_LIMITS__MODEL_UPLOADS_PER_HOUR": "0"})
    with pytest.raises(ValueError, match=r"unknown rate-limited action 'webhooks\.tset'"):
        rate_limit("webhooks.tset")
