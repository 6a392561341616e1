"""Concurrent new versions of one model: uploads and training runs registering at the same time
never collide on a version number nor fail with a 500 (SQLite and real PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from backplane.app import create_app
from backplane.inference.registry import RegistryError, add_model
from backplane.kernel import Rails
from backplane.loading import load_plugins
from backplane.models import resource
from backplane.testing import SeededTenant
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import seed_tenant

IRIS = resource("iris_classifier.onnx").read_bytes()
DIABETES = resource("diabetes_regressor.onnx").read_bytes()


@pytest.fixture
def stack(data_dir: Path, db_env: dict[str, str]) -> Iterator[tuple[list[Any], SeededTenant]]:
    """Two applications on one database (two server processes, as far as the database can
    tell: separate engines and event loops) and a tenant."""
    env = {"BACKPLANE_PLUGINS": "kitchen_sink", **db_env}
    plugins = load_plugins(make_settings(data_dir, env))
    migrate(plugins)
    tenant = seed_tenant(plugins, "acme")
    with contextlib.ExitStack() as apps:
        clients = []
        for _ in range(2):
            other = load_plugins(make_settings(data_dir, env))
            clients.append(
                apps.enter_context(TestClient(create_app(other.settings, plugins=other)))
            )
        # Each app's first request records the API key's use and its task runtime starts; on
        # SQLite two apps doing that at once can wait out the busy timeout (unrelated to
        # versions), so the race starts once both have answered.
        for client in clients:
            assert client.get("/api/models", headers=tenant.headers).status_code == 200
        yield clients, tenant


def upload(client: Any, tenant: SeededTenant, data: bytes, **fields: str) -> Any:
    """Upload as a client does: a 503 (on SQLite, the database's one writer was busy, and
    nothing was written) is tried again after its ``Retry-After``, up to five times."""
    files = {"file": ("m.onnx", data, "application/octet-stream")}
    for _ in range(5):
        answer = client.post(
            "/api/models", files=files, data={"name": "scorer", **fields}, headers=tenant.headers
        )
        if answer.status_code != 503:
            break
        time.sleep(min(2.0, float(answer.headers.get("Retry-After", "1"))))
    return answer


def test_concurrent_uploads_get_distinct_versions(stack: tuple[list[Any], SeededTenant]) -> None:
    clients, tenant = stack

    def one(i: int) -> Any:
        return upload(clients[i % 2], tenant, IRIS if i % 3 else DIABETES)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(8)))
    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
    versions = sorted(int(a.json()["version"]) for a in answers)
    assert versions == list(range(1, 9))
    listed = clients[0].get("/api/models/scorer", headers=tenant.headers).json()
    assert sorted(int(v["version"]) for v in listed) == versions


def test_an_explicit_version_racing_numbered_ones_is_a_conflict_or_taken(
    stack: tuple[list[Any], SeededTenant],
) -> None:
    """Numbered uploads racing one that names version "3": every answer is 201 or (for the
    named one, when a numbered upload took 3 first) 409; no 500, no duplicate."""
    clients, tenant = stack

    def one(i: int) -> Any:
        fields = {"version": "3"} if i == 0 else {}
        return upload(clients[i % 2], tenant, IRIS, **fields)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(one, range(6)))
    named, numbered = answers[0], answers[1:]
    assert all(a.status_code == 201 for a in numbered), [a.text for a in numbered]
    assert named.status_code in (201, 409), named.text
    versions = [a.json()["version"] for a in answers if a.status_code == 201]
    assert len(versions) == len(set(versions))
    if named.status_code == 409:
        assert "already has version '3'" in named.json()["detail"]
        assert sorted(map(int, versions)) == [1, 2, 3, 4, 5]
    else:  # numbered ones before it took 1, 2, ...; those after it go on from 4
        assert named.json()["version"] == "3"
        taken = sorted(int(a.json()["version"]) for a in numbered)
        before = sum(v < 3 for v in taken)
        assert taken == [*range(1, before + 1), *range(4, 4 + 5 - before)]


def test_registrations_in_concurrent_transactions_take_the_next_free_number(
    data_dir: Path, db_env: dict[str, str]
) -> None:
    """What a training run does (:func:`add_model` in its own transaction, no version given),
    several at once, next to an upload naming version 2: each gets a number of its own."""
    plugins = load_plugins(make_settings(data_dir, {"BACKPLANE_PLUGINS": "", **db_env}))
    migrate(plugins)
    tenant = seed_tenant(plugins, "acme")

    async def register(rails: Rails, version: str | None) -> str:
        async with rails.kernel().tenant(tenant.tenant_id) as kernel:
            assert kernel.tenant_id is not None
            row = await add_model(
                kernel.db,
                rails.models,
                tenant_id=kernel.tenant_id,
                name="scorer",
                data=IRIS,
                version=version,
            )
            return row.version

    async def scenario() -> list[str | BaseException]:
        rails = Rails.build(plugins.settings, plugins)
        try:
            wanted = [None, None, "2", None, None]
            return list(
                await asyncio.gather(*(register(rails, v) for v in wanted), return_exceptions=True)
            )
        finally:
            await rails.close()

    results = asyncio.run(scenario())
    named = results[2]
    numbered = results[:2] + results[3:]
    assert all(isinstance(v, str) for v in numbered), numbered
    if isinstance(named, RegistryError):
        assert named.status_code == 409
        assert sorted(map(int, numbered)) == [1, 2, 3, 4]  # type: ignore[arg-type]
    else:  # the next number is one past the largest: 1 before "2" was taken, 3... after
        assert named == "2"
        assert sorted(map(int, numbered)) in ([1, 3, 4, 5], [3, 4, 5, 6])  # type: ignore[arg-type]


@pytest.mark.slow  # two fit subprocesses
def test_two_training_runs_at_once_register_two_versions(
    data_dir: Path, db_env: dict[str, str]
) -> None:
    """Two runs of one model's trainer, executed at the same time (two task executions, each
    with its own transactions), and an upload meanwhile: three versions, none lost."""
    from bp_sample_kitchen_sink.models import Note
    from bp_sample_kitchen_sink.trainers import note_row, synthetic

    from backplane.db.tenancy import bind_tenant
    from backplane.inference.training import train_model
    from backplane.inference.training_runs import TrainingRun
    from backplane.kernel import Kernel
    from backplane.plugins import KERNEL_PLUGIN

    env = {
        "BACKPLANE_PLUGINS": "kitchen_sink",
        "BACKPLANE_TRAINING__TIME_LIMIT_S": "120",
        "BACKPLANE_TRAINING__MEMORY_BYTES": str(1536 << 20),
        **db_env,
    }
    plugins = load_plugins(make_settings(data_dir, env))
    migrate(plugins)
    tenant = seed_tenant(plugins, "acme")
    features, labels = synthetic(200, seed=3)

    async def scenario() -> tuple[list[TrainingRun], str]:
        rails = Rails.build(plugins.settings, plugins)
        try:
            async with rails.kernel().tenant(tenant.tenant_id) as kernel:
                for row, label in zip(features, labels, strict=True):
                    kernel.db.add(Note(body=note_row(list(map(float, row)), int(label))))
                runs = [
                    TrainingRun(model="note_score", trainer="kitchen_sink.notes") for _ in range(2)
                ]
                kernel.db.add_all(runs)

            async def run(run_id: str) -> None:
                # as the task runtime runs it: a session of the tenant that the task commits
                async with rails.database.sessions() as session:
                    bind_tenant(session, tenant.tenant_id)
                    kernel = Kernel(rails, KERNEL_PLUGIN, db=session, tenant_id=tenant.tenant_id)
                    await train_model(kernel, run_id)
                    await session.commit()

            async def upload_meanwhile() -> str:
                await asyncio.sleep(1.0)
                async with rails.kernel().tenant(tenant.tenant_id) as kernel:
                    assert kernel.tenant_id is not None
                    row = await add_model(
                        kernel.db,
                        rails.models,
                        tenant_id=kernel.tenant_id,
                        name="note_score",
                        data=IRIS,
                    )
                    return row.version

            *_, uploaded = await asyncio.gather(*(run(str(r.id)) for r in runs), upload_meanwhile())
            async with rails.kernel().tenant(tenant.tenant_id) as kernel:
                found = [await kernel.db.get(TrainingRun, r.id) for r in runs]
                return [r for r in found if r is not None], uploaded
        finally:
            await rails.close()

    runs, uploaded = asyncio.run(scenario())
    assert [r.status for r in runs] == ["succeeded", "succeeded"], [r.error for r in runs]
    versions = sorted([*(str(r.version) for r in runs), uploaded], key=int)
    assert versions == ["1", "2", "3"]
