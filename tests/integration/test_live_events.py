"""Live events in one process, without Redis: ``GET /api/events`` over real HTTP (uvicorn in a
thread), fed by ``kernel.live.publish`` in a plugin's handler and task.

Who receives what (the tenant's stream, one user's stream, never another tenant's),
``Last-Event-ID`` resumption and the gap beyond the kept window, bad positions, the stream
limits and their release on disconnect, keep-alive comments, the stream's lifetime, platform
events marked ``live`` reaching the stream only when their transaction commits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from litestar import Litestar

from backplane.app import create_app
from backplane.db.locks import lock_row
from backplane.db.tenancy import bind_tenant
from backplane.identity.models import Tenant
from backplane.loading import load_plugins
from tests.app_helpers import rails
from tests.cli import run_cli, serving
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import PASSWORD, Seeded, seed_tenant
from tests.live_helpers import EventStream, open_stream, publish, serving_in_thread
from tests.waiting import wait_for

FAST = {
    "BACKPLANE_PLUGINS": "kitchen_sink",
    "BACKPLANE_LIVE__KEEPALIVE_S": "0.3",
    "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
}


@dataclass
class Live:
    app: Litestar
    base: str
    a: Seeded
    b: Seeded

    def token(self, email: str, tenant: str) -> dict[str, str]:
        """An access token of the user ``email`` acting for ``tenant``: a user's stream."""
        response = httpx.post(
            f"{self.base}/api/auth/login",
            json={"email": email, "password": PASSWORD, "tenant": tenant},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def member_of_acme(self, name: str) -> tuple[Seeded, dict[str, str]]:
        """A user with a tenant of their own (``name``), added to acme: their access token
        acting for acme."""
        user = seed_tenant(self.app, name, email=f"{name}@acme.example.org")
        added = httpx.post(
            f"{self.base}/api/tenant/members",
            json={"email": user.email, "role": "member"},
            headers=self.a.headers,
            timeout=10,
        )
        assert added.status_code == 201, added.text
        return user, self.token(user.email, "acme")


@contextlib.contextmanager
def started(data_dir: Path, **env: str) -> Iterator[Live]:
    """The app with kitchen_sink, tenants acme and globex, served on a real port."""
    settings = make_settings(data_dir, {**FAST, **env})
    plugins = load_plugins(settings)
    migrate(plugins)
    a, b = seed_tenant(plugins, "acme"), seed_tenant(plugins, "globex")
    app = create_app(settings, plugins=plugins)
    with serving_in_thread(app) as base:
        yield Live(app, base, a, b)


@pytest.fixture
def live(data_dir: Path) -> Iterator[Live]:
    with started(data_dir) as running:
        yield running


def test_a_tenant_event_reaches_every_stream_of_the_tenant_and_no_other(live: Live) -> None:
    owner = live.token(live.a.email, "acme")
    with (
        open_stream(live.base, live.a.headers) as by_key,
        open_stream(live.base, owner) as by_owner,
        open_stream(live.base, live.b.headers) as other_tenant,
    ):
        assert by_key.start.id
        assert (by_key.start.retry, by_key.start.data) == ("2000", None)
        published = publish(live.base, live.a.headers, "hello", {"n": 1})
        publish(live.base, live.b.headers, "marker")
        for stream in (by_key, by_owner):
            event = stream.next_event()
            assert event.event == "kitchen_sink.hello"
            body = event.json
            assert (body["type"], body["data"], body["scope"]) == (
                "kitchen_sink.hello",
                {"n": 1},
                "tenant",
            )
            assert event.id is not None
            assert event.id.split("_")[0] == published["id"]
        # B's first event is its own marker: A's never reached it.
        assert other_tenant.next_event().event == "kitchen_sink.marker"


def test_a_user_event_reaches_that_user_only(live: Live) -> None:
    bob, bob_token = live.member_of_acme("bob")
    alice_token = live.token(live.a.email, "acme")
    with (
        open_stream(live.base, alice_token) as alice,
        open_stream(live.base, bob_token) as bob_in_acme,
        open_stream(live.base, bob.headers) as bobs_own_tenant,
        open_stream(live.base, live.a.headers) as api_key,
    ):
        publish(live.base, live.a.headers, "private", {"for": "alice"}, user_id=str(live.a.user_id))
        publish(live.base, live.a.headers, "everyone")
        publish(live.base, bob.headers, "marker")
        first = alice.next_event()
        assert (first.event, first.json["scope"]) == ("kitchen_sink.private", "user")
        assert alice.next_event().event == "kitchen_sink.everyone"
        assert bob_in_acme.next_event().event == "kitchen_sink.everyone"
        # Alice's API key acts as alice (its creator): her private events reach it too.
        assert [e.event for e in api_key.events(2)] == [
            "kitchen_sink.private",
            "kitchen_sink.everyone",
        ]
        # Alice's private event is tenant acme's: bob's own tenant sees neither.
        assert bobs_own_tenant.next_event().event == "kitchen_sink.marker"


def test_an_event_published_by_a_task_reaches_the_stream(live: Live) -> None:
    with open_stream(live.base, live.a.headers) as stream:
        publish(live.base, live.a.headers, "from_task", {"ok": True}, via_task=True)
        event = stream.next_event()
        assert (event.event, event.json["data"]) == ("kitchen_sink.from_task", {"ok": True})


def test_a_reconnect_with_last_event_id_gets_what_it_missed(live: Live) -> None:
    owner = live.token(live.a.email, "acme")
    with open_stream(live.base, owner) as stream:
        publish(live.base, live.a.headers, "one")
        seen = stream.next_event()
    publish(live.base, live.a.headers, "two")
    publish(live.base, live.a.headers, "three", user_id=str(live.a.user_id))
    publish(live.base, live.a.headers, "four")
    with open_stream(live.base, owner, last_event_id=seen.id) as stream:
        assert stream.start.id == seen.id
        missed = stream.events(3)
        assert sorted(e.event for e in missed) == sorted(
            f"kitchen_sink.{k}" for k in ("two", "three", "four")
        )
        publish(live.base, live.a.headers, "five")
        assert stream.next_event().event == "kitchen_sink.five"  # then live, nothing twice
        last = missed[-1].id
    # The same position as a query parameter (for clients that cannot set the header).
    query = httpx.Client(timeout=10)
    with query.stream(
        "GET", f"{live.base}/api/events", params={"last_event_id": last}, headers=owner
    ) as response:
        assert response.status_code == 200
        again = EventStream(response)
        again.next()
        assert again.next_event().event == "kitchen_sink.five"
    query.close()


def test_a_position_older_than_the_window_says_events_were_missed(data_dir: Path) -> None:
    with started(data_dir, BACKPLANE_LIVE__HISTORY_EVENTS="2") as live:
        with open_stream(live.base, live.a.headers) as stream:
            publish(live.base, live.a.headers, "kept")
            position = stream.next_event().id
        for n in range(4):
            publish(live.base, live.a.headers, f"later_{n}")
        with open_stream(live.base, live.a.headers, last_event_id=position) as stream:
            gap = stream.next_event()
            assert (gap.event, gap.json["scope"]) == ("live.gap", "tenant")
            kept = stream.events(2)
            assert [e.event for e in kept] == ["kitchen_sink.later_2", "kitchen_sink.later_3"]


@pytest.mark.parametrize("bad", ["nonsense", "1-0", "1-0_x", "1-0_1-0_1-0", "-1-0_0-0"])
def test_a_malformed_position_is_400(live: Live, bad: str) -> None:
    response = httpx.get(
        f"{live.base}/api/events", headers={**live.a.headers, "Last-Event-ID": bad}, timeout=10
    )
    assert response.status_code == 400
    assert "Last-Event-ID" in response.text


def test_the_stream_needs_authentication(live: Live) -> None:
    response = httpx.get(f"{live.base}/api/events", timeout=10)
    assert response.status_code == 401


def test_streams_are_limited_per_user_and_tenant_and_given_back_on_disconnect(
    data_dir: Path,
) -> None:
    with started(
        data_dir,
        BACKPLANE_LIVE__MAX_STREAMS_PER_USER="1",
        BACKPLANE_LIVE__MAX_STREAMS_PER_TENANT="2",
    ) as live:
        hub = rails(live.app).live
        owner = live.token(live.a.email, "acme")
        _, bob = live.member_of_acme("bob")
        _, carol = live.member_of_acme("carol")
        with open_stream(live.base, owner):
            # The owner's API key acts as the owner: the same user's second stream.
            second = httpx.get(f"{live.base}/api/events", headers=live.a.headers, timeout=10)
            assert second.status_code == 429
            assert "live.max_streams_per_user" in second.text
            with open_stream(live.base, bob):
                third = httpx.get(f"{live.base}/api/events", headers=carol, timeout=10)
                assert third.status_code == 429
                assert "live.max_streams_per_tenant" in third.text
                assert hub.open_streams(live.a.tenant_id) == 2
                with open_stream(live.base, live.b.headers):  # another tenant's own count
                    assert hub.open_streams() == 3
        wait_for(
            lambda: hub.open_streams() == 0,
            message="the streams' places given back after the clients left",
            timeout=10,
        )
        with open_stream(live.base, carol):
            assert hub.open_streams(live.a.tenant_id) == 1


def test_a_stream_is_503_while_redis_does_not_answer(data_dir: Path) -> None:
    with started(data_dir, BACKPLANE_LIVE__REDIS_URL="redis://127.0.0.1:1/0") as live:
        response = httpx.get(f"{live.base}/api/events", headers=live.a.headers, timeout=20)
        assert response.status_code == 503
        assert "Redis did not answer" in response.text
        assert rails(live.app).live.open_streams() == 0  # its place given back


def test_an_idle_stream_gets_keep_alive_comments(live: Live) -> None:
    with open_stream(live.base, live.a.headers) as stream:
        message = stream.next()
        assert (message.comments, message.event) == (["keep-alive"], None)


def test_a_stream_ends_after_its_lifetime(data_dir: Path) -> None:
    with started(data_dir, BACKPLANE_LIVE__MAX_STREAM_S="1") as live:
        began = time.monotonic()
        with open_stream(live.base, live.a.headers) as stream:
            messages = 0
            with contextlib.suppress(EOFError):
                while stream.next():
                    messages += 1
        assert messages >= 1  # keep-alive comments, then the end
        assert 0.9 < time.monotonic() - began < 5


def test_a_live_platform_event_is_sent_when_its_transaction_commits(live: Live) -> None:
    """``quota.reached`` is marked ``live``: emitted in a rolled-back transaction, or in a
    savepoint rolled back while its transaction commits, or in a savepoint released in a
    transaction that then rolls back, it is never sent; committed (in a savepoint released or
    not, before a savepoint rolled back or not), it reaches the tenant's stream."""
    app_rails = rails(live.app)
    data = {"meter": "kitchen_sink.notes", "limit": 1}

    async def emit(commit: bool) -> None:
        async with app_rails.database.sessions() as session:
            bind_tenant(session, live.a.tenant_id)
            async with session.begin():
                await app_rails.events.emit(session, "quota.reached", {**data, "commit": commit})
                if not commit:
                    await session.rollback()

    async def emit_in_savepoint(keep: bool, commit: bool = True) -> None:
        async with app_rails.database.sessions() as session:
            bind_tenant(session, live.a.tenant_id)
            async with session.begin():
                # The write lock first: on SQLite a transaction that reads (the emit does)
                # before its first write fails at once if the server's worker wrote meanwhile.
                await lock_row(session, Tenant, live.a.tenant_id)
                await app_rails.events.emit(session, "quota.reached", {**data, "before": keep})
                savepoint = await session.begin_nested()
                await app_rails.events.emit(session, "quota.reached", {**data, "kept": keep})
                await (savepoint.commit() if keep else savepoint.rollback())
                if not commit:
                    await session.rollback()

    with open_stream(live.base, live.a.headers) as stream:
        asyncio.run(emit(commit=False))
        asyncio.run(emit_in_savepoint(keep=False))
        # the savepoint's event is dropped; the one emitted before it, in the transaction that
        # committed, is not (it was lost when any rollback dropped every pending event)
        assert stream.next_event().json["data"] == {**data, "before": False}
        asyncio.run(emit_in_savepoint(keep=True))
        assert stream.next_event().json["data"] == {**data, "before": True}
        assert stream.next_event().json["data"] == {**data, "kept": True}
        # released, then rolled back with its transaction: the release published them before
        asyncio.run(emit_in_savepoint(keep=True, commit=False))
        asyncio.run(emit(commit=True))
        event = stream.next_event()
        assert event.event == "quota.reached"
        assert event.json["data"] == {**data, "commit": True}
        assert event.json["scope"] == "tenant"


@pytest.mark.slow
def test_the_server_stops_at_once_with_streams_open(data_dir: Path, tmp_path: Path) -> None:
    """SIGTERM ends open streams (clients reconnect elsewhere): ``backplane serve`` exits in
    seconds, not after ``server.shutdown_timeout_s`` (30 s by default)."""
    env = {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_PLUGINS": "kitchen_sink"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    created = run_cli("tenants", "create", "acme", "--owner-email", "o@acme.org", "--json", env=env)
    headers = {"Authorization": f"Bearer {json.loads(created.stdout)['api_key']}"}
    with (
        serving(env, tmp_path / "serve.log", timeout=30) as server,
        open_stream(server.base, headers) as first,
        open_stream(server.base, headers) as second,
    ):
        began = time.monotonic()
        os.killpg(server.process.pid, signal.SIGTERM)
        for stream in (first, second):
            with pytest.raises((EOFError, httpx.RemoteProtocolError)):
                _read_to_the_end(stream)
        # uvicorn re-raises the signal it handled once the application has shut down.
        assert server.process.wait(10) in (0, -signal.SIGTERM)
        assert time.monotonic() - began < 5
    assert "Application shutdown complete" in (tmp_path / "serve.log").read_text()


def _read_to_the_end(stream: EventStream) -> None:
    while True:
        stream.next()
