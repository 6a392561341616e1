"""History retention: old finished tasks, schedule periods and webhook deliveries are deleted;
failed tasks, pending deliveries and anything recent stay (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from backplane.billing.webhooks.models import (
    FAILED,
    PENDING,
    SUCCEEDED,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from backplane.inference.storage import LocalArtifactStore, local_store
from backplane.loading import load_plugins
from backplane.retention import prune
from backplane.settings import Settings
from backplane.tasks.models import DONE, OutboxMessage, ScheduleRun
from backplane.tasks.models import FAILED as TASK_FAILED
from tests.app_helpers import task_runtime
from tests.billing_helpers import session_for
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import seed_tenant

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
OLD_TASK = NOW - timedelta(days=8)  # past the 7-day default
NEW_TASK = NOW - timedelta(days=6)
OLD_HOOK = NOW - timedelta(days=31)  # past the 30-day default
NEW_HOOK = NOW - timedelta(days=29)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, data_dir: Path) -> tuple[Settings, list[uuid.UUID]]:
    """Migrated settings (kernel only) and two tenants."""
    env = {"BACKPLANE_PLUGINS": ""}
    if request.param == "postgres":
        env["BACKPLANE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrate(plugins)
    return settings, [seed_tenant(plugins, s).tenant_id for s in ("acme", "globex")]


async def test_prune_deletes_only_old_finished_history(
    world: tuple[Settings, list[uuid.UUID]],
) -> None:
    settings, tenants = world
    store = local_store(settings.data_dir)

    def task(status: str, finished: datetime | None) -> OutboxMessage:
        return OutboxMessage(
            id=uuid.uuid4(), actor="core.x", queue="backplane", args=[], kwargs={},
            trace_context={}, status=status, finished_at=finished,
        )  # fmt: skip

    kept_tasks = [task(DONE, NEW_TASK), task(TASK_FAILED, OLD_TASK), task("pending", None)]
    old_done = task(DONE, OLD_TASK)
    async with session_for(settings, None) as session:
        session.add_all([*kept_tasks, old_done])
        await session.flush()
        session.add_all(
            [
                ScheduleRun(job="core.x", period_start=OLD_TASK, outbox_id=old_done.id),
                ScheduleRun(job="core.x", period_start=NEW_TASK, outbox_id=kept_tasks[0].id),
            ]
        )
    kept_deliveries: list[uuid.UUID] = []
    old_events: list[uuid.UUID] = []
    for tenant in tenants:
        async with session_for(settings, tenant) as session:
            endpoint = WebhookEndpoint(url="https://93.184.216.34/x", secret_sealed="s")
            session.add(endpoint)
            await session.flush()
            for when, status in [
                (OLD_HOOK, SUCCEEDED),  # deleted, and its event with it
                (OLD_HOOK, FAILED),  # deleted
                (OLD_HOOK, PENDING),  # kept: still to be sent (and its event)
                (NEW_HOOK, SUCCEEDED),  # kept: recent
            ]:
                event = WebhookEvent(type="webhook.test", payload="{}", created_at=when)
                session.add(event)
                await session.flush()
                delivery = WebhookDelivery(
                    endpoint_id=endpoint.id, event_id=event.id, event_type=event.type,
                    status=status, created_at=when,
                )  # fmt: skip
                session.add(delivery)
                await session.flush()
                if when == OLD_HOOK and status != PENDING:
                    old_events.append(event.id)
                else:
                    kept_deliveries.append(delivery.id)

    async with session_for(settings, None) as session:
        counts = await prune(session, settings, store, NOW)
    assert counts == {
        "schedule_periods": 1,
        "tasks": 1,
        "webhook_deliveries": 4,
        "webhook_events": 4,
        "model_files": 0,
    }

    async with session_for(settings, None) as session:
        tasks_left = set(await session.scalars(select(OutboxMessage.id)))
        assert tasks_left == {t.id for t in kept_tasks}
        periods = list(await session.scalars(select(ScheduleRun.period_start)))
        assert [p.replace(tzinfo=UTC) if p.tzinfo is None else p for p in periods] == [NEW_TASK]
        deliveries = set(await session.scalars(select(WebhookDelivery.id)))
        assert deliveries == set(kept_deliveries)
        events = set(await session.scalars(select(WebhookEvent.id)))
        assert not events & set(old_events)
        assert len(events) == len(kept_deliveries)

    async with session_for(settings, None) as session:  # nothing more to do: idempotent
        assert set((await prune(session, settings, store, NOW)).values()) == {0}


def stored_file(store: LocalArtifactStore, sha256: str) -> Path:
    """Where the local store keeps an artifact (its documented layout)."""
    return store.root / sha256[:2] / f"{sha256}.onnx"


async def test_prune_deletes_model_files_no_version_refers_to_once_old(
    world: tuple[Settings, list[uuid.UUID]],
) -> None:
    """A deleted model's file goes after ``inference.keep_unreferenced_s`` (a day); a file a
    version of any tenant still uses stays, however old, and so does a recent one (an upload
    may be between storing its file and committing its row)."""
    import os

    from backplane.inference.models import ModelVersion

    settings, tenants = world
    store = local_store(settings.data_dir)
    used = store.put(b"model of globex")
    old_unused = store.put(b"a deleted model")
    new_unused = store.put(b"an upload about to be registered")
    leftover = store.root / old_unused[:2] / ".upload.abc123"
    leftover.write_bytes(b"half an upload")
    two_days_ago = (NOW - timedelta(days=2)).timestamp()
    for path in (stored_file(store, used), stored_file(store, old_unused), leftover):
        os.utime(path, (two_days_ago, two_days_ago))
    an_hour_ago = (NOW - timedelta(hours=1)).timestamp()
    os.utime(stored_file(store, new_unused), (an_hour_ago, an_hour_ago))
    async with session_for(settings, tenants[1]) as session:
        session.add(
            ModelVersion(
                tenant_id=tenants[1], name="m", version="1", sha256=used, size_bytes=15,
                source="upload", description="", signature={}, dynamic_batch=False,
                max_batch_size=0, max_queue_delay_us=0, status="ready",
            )
        )  # fmt: skip

    async with session_for(settings, None) as session:
        counts = await prune(session, settings, store, NOW)
    assert counts["model_files"] == 2
    assert store.exists(used)
    assert store.exists(new_unused)
    assert not store.exists(old_unused)
    assert not leftover.exists()
    assert store.get(used) == b"model of globex"

    again = store.put(b"uploaded long ago, deleted, uploaded again")
    os.utime(stored_file(store, again), (two_days_ago, two_days_ago))
    assert store.put(b"uploaded long ago, deleted, uploaded again") == again  # age starts over
    async with session_for(settings, None) as session:
        assert (await prune(session, settings, store, NOW))["model_files"] == 0
    assert store.exists(again)


def test_the_kernel_schedules_it_hourly(data_dir: Path) -> None:

    runtime = task_runtime(load_plugins(make_settings(data_dir, {"BACKPLANE_PLUGINS": ""})))
    task = runtime.tasks["core.prune_history"]
    assert task.schedule == "41 * * * *"
