"""Retraining on a schedule: set through the API or the CLI, each scheduled time starts one
normal training run under the tenant, however many processes look at once (SQLite and real
PostgreSQL), and a refused time is recorded, not retried in a loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from backplane.app import create_app
from backplane.inference.schedules import start_due
from backplane.inference.training_runs import TrainingRun
from backplane.kernel import Rails
from backplane.loading import load_plugins
from backplane.testing import SeededTenant
from tests.cli import run_cli
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import seed_tenant
from tests.integration.test_retention import task_runtime

URL = "/api/models/note_score/training-schedule"


class Stack:
    def __init__(
        self,
        client: TestClient[Any],
        acme: SeededTenant,
        beta: SeededTenant,
        plugins: Any,
        env: dict[str, str],
    ) -> None:
        self.client, self.acme, self.beta, self.plugins = client, acme, beta, plugins
        self.env = env
        """The variables of CLI commands on the same database."""

    def call(self, who: SeededTenant, method: str, url: str = URL, **kwargs: Any) -> Any:
        return self.client.request(method, url, headers=who.headers, **kwargs)


@pytest.fixture
def stack(data_dir: Path, db_env: dict[str, str]) -> Iterator[Stack]:
    env = {
        "BACKPLANE_PLUGINS": "kitchen_sink",
        "BACKPLANE_TRAINING__MAX_CONCURRENT_PER_TENANT": "5",
        # the schedule's runs are started here by hand, not by the in-process worker
        "BACKPLANE_TASKS__SCHEDULER_INTERVAL_S": "3600",
        **db_env,
    }
    plugins = load_plugins(make_settings(data_dir, env))
    migrate(plugins)
    acme, beta = seed_tenant(plugins, "acme"), seed_tenant(plugins, "beta")
    with TestClient(create_app(plugins.settings, plugins=plugins)) as client:
        stack = Stack(client, acme, beta, plugins, {"BACKPLANE_DATA_DIR": str(data_dir), **env})
        for who in (acme, beta):
            on = stack.call(who, "PUT", "/api/tenant/plugins/kitchen_sink", json={"enabled": True})
            assert on.status_code == 200, on.text
        yield stack


def due(stack: Stack, now: datetime, processes: int = 1) -> list[list[Any]]:
    """``start_due`` as ``processes`` task executions at once, each with its own rails and
    maintenance transaction; the runs each started."""

    async def one() -> list[Any]:
        rails = Rails.build(stack.plugins.settings, stack.plugins)
        try:
            async with rails.database.maintenance("test") as session, session.begin():
                return await start_due(session, rails.kernel(), now)
        finally:
            await rails.close()

    async def every() -> list[list[Any]]:
        return list(await asyncio.gather(*(one() for _ in range(processes))))

    return asyncio.run(every())


def runs(stack: Stack) -> list[TrainingRun]:
    async def read() -> list[TrainingRun]:
        rails = Rails.build(stack.plugins.settings, stack.plugins)
        try:
            async with rails.kernel().tenant(stack.acme.tenant_id) as kernel:
                return list(await kernel.db.scalars(select(TrainingRun)))
        finally:
            await rails.close()

    return asyncio.run(read())


def test_a_schedule_is_set_shown_and_removed_and_bad_ones_refused(stack: Stack) -> None:
    set_ = stack.call(stack.acme, "PUT", json={"cron": "0  3 * * *"})
    assert set_.status_code == 200, set_.text
    shown = set_.json()
    assert (shown["cron"], shown["trainer"], shown["last_run_id"]) == (
        "0 3 * * *",
        "kitchen_sink.notes",
        None,
    )
    upcoming = datetime.fromisoformat(shown["next_run_at"])
    assert (upcoming.hour, upcoming.minute) == (3, 0)
    assert upcoming - datetime.now(UTC) <= timedelta(days=1)
    assert stack.call(stack.acme, "GET").json() == shown

    for cron, reason in [
        ("61 * * * *", "five fields"),
        ("0 3 * *", "five fields"),
        ("0 0 3 * * *", "five fields"),
        ("*/5 * * * *", "training.min_schedule_interval_s is 3600"),
    ]:
        bad = stack.call(stack.acme, "PUT", json={"cron": cron})
        assert bad.status_code == 422, (cron, bad.text)
        assert reason in bad.json()["detail"]
    unknown = stack.call(
        stack.acme, "PUT", "/api/models/nothing/training-schedule", json={"cron": "0 3 * * *"}
    )
    assert unknown.status_code == 404
    assert stack.call(stack.acme, "PUT", json={"cron": "0 3 * * *", "at": 1}).status_code == 400
    # another tenant neither sees nor removes acme's schedule
    assert stack.call(stack.beta, "GET").status_code == 404
    assert stack.call(stack.beta, "DELETE").status_code == 404
    assert stack.call(stack.acme, "DELETE").status_code == 204
    assert stack.call(stack.acme, "GET").status_code == 404


def test_each_time_starts_one_run_however_many_processes_look(stack: Stack) -> None:
    assert stack.call(stack.acme, "PUT", json={"cron": "0 3 * * *"}).status_code == 200
    set_at = datetime.now(UTC)
    assert due(stack, set_at) == [[]]  # setting a schedule never trains at once
    tomorrow = (set_at + timedelta(days=1)).replace(hour=3, minute=0, second=30, microsecond=0)
    started = due(stack, tomorrow, processes=4)
    assert sorted(len(s) for s in started) == [0, 0, 0, 1]
    assert due(stack, tomorrow + timedelta(minutes=5)) == [[]]  # the same time: taken already
    (run,) = runs(stack)
    assert (run.model, run.trainer, run.requested_by) == ("note_score", "kitchen_sink.notes", None)
    shown = stack.call(stack.acme, "GET").json()
    assert shown["last_run_id"] == str(run.id)
    # a normal run of the training task, under acme (which has no notes: it fails saying so)
    url = f"/api/models/note_score/training-runs/{run.id}"
    deadline = time.monotonic() + 60
    while (done := stack.call(stack.acme, "GET", url).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, done
        time.sleep(0.2)
    assert done["status"] == "failed"
    assert "the trainer returned 0 rows" in done["error"]
    assert datetime.fromisoformat(shown["last_slot"]) == tomorrow.replace(second=0)
    # two days later: one more run (the time missed in between is not made up)
    later = tomorrow + timedelta(days=2)
    assert sum(len(s) for s in due(stack, later, processes=2)) == 1
    assert len(runs(stack)) == 2


def test_a_refused_time_is_recorded_and_waits_for_the_next(stack: Stack) -> None:
    assert stack.call(stack.acme, "PUT", json={"cron": "30 2 * * *"}).status_code == 200
    capped = run_cli("quotas", "set", "acme", "inference.training_seconds", "0", env=stack.env)
    assert capped.returncode == 0, capped.stderr
    when = (datetime.now(UTC) + timedelta(days=1)).replace(hour=2, minute=31)
    assert due(stack, when) == [[]]
    shown = stack.call(stack.acme, "GET").json()
    assert shown["last_run_id"] is None
    assert "inference.training_seconds" in shown["last_error"]
    assert runs(stack) == []
    assert due(stack, when + timedelta(minutes=10)) == [[]]  # not retried every minute


def test_the_cli_sets_shows_and_removes_a_schedule(data_dir: Path) -> None:
    env = {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_PLUGINS": "kitchen_sink"}
    plugins = load_plugins(make_settings(data_dir, env))
    migrate(plugins)
    seed_tenant(plugins, "acme")
    made = run_cli("models", "schedule", "note_score", "0 3 * * *", "--tenant", "acme", env=env)
    assert made.returncode == 0, made.stderr
    assert "note_score for acme: kitchen_sink.notes at '0 3 * * *' (UTC), next" in made.stdout
    shown = run_cli("models", "schedule", "note_score", "--tenant", "acme", env=env)
    assert "at '0 3 * * *'" in shown.stdout
    bad = run_cli("models", "schedule", "note_score", "* * * * *", "--tenant", "acme", env=env)
    assert bad.returncode == 1
    assert "training.min_schedule_interval_s" in bad.stderr
    off = run_cli("models", "schedule", "note_score", "--off", "--tenant", "acme", env=env)
    assert off.returncode == 0, off.stderr
    gone = run_cli("models", "schedule", "note_score", "--tenant", "acme", env=env)
    assert gone.returncode == 1
    assert "has no training schedule" in gone.stderr
    runtime = task_runtime(plugins)
    assert runtime.tasks["core.retrain_scheduled"].schedule == "* * * * *"
