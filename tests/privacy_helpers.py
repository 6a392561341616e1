"""A stack with data of two tenants in every installed plugin, and row counts to compare."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Table, func, inspect, select

from backplane.app import create_app
from backplane.db import migrations
from backplane.db.migrations import registered_migrations
from backplane.loading import load_plugins
from backplane.models import resource
from backplane.plugins import PluginSet
from backplane.testing import TEST_PASSWORD, SeededTenant, seed_tenant
from tests.conftest import make_settings
from tests.db_helpers import admin_session
from tests.identity_helpers import TEST_PASSWORD_ENV

IRIS = resource("iris_classifier.onnx").read_bytes()
DIABETES = resource("diabetes_regressor.onnx").read_bytes()
STACK_ENV = {
    "BACKPLANE_WEBHOOKS__ALLOW_HTTP": "true",
    "BACKPLANE_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES": "true",
}
"""A webhook endpoint on the loopback address (never reached within a test)."""
NAMING_COLUMNS = {
    "backplane_refresh_tokens": "active_tenant_id",
    "backplane_task_outbox": "context_tenant_id",
}
"""Kernel tables that name a tenant without a ``tenant_id`` column."""


@dataclass
class Stack:
    client: TestClient[Litestar]
    plugins: PluginSet
    env: dict[str, str]
    """The command line's environment for the same installation."""
    data_dir: Path
    a: SeededTenant
    b: SeededTenant

    def call(self, who: SeededTenant, method: str, url: str, **kwargs: Any) -> Any:
        return self.client.request(method, url, headers=who.headers, **kwargs)

    def model_file(self, data: bytes) -> Path:
        sha = hashlib.sha256(data).hexdigest()
        return self.data_dir / "models" / sha[:2] / f"{sha}.onnx"


def run(work: Any) -> Any:
    """Run a coroutine from a sync test (whose client runs its own event loop elsewhere)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work).result()


@contextmanager
def stack_on(data_dir: Path, db_env: dict[str, str]) -> Iterator[Stack]:
    """Every installed plugin, migrated, serving; tenants ``acme`` (a) and ``globex`` (b)."""
    env = {**STACK_ENV, **db_env}
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrations.upgrade(plugins)
    a, b = seed_tenant(plugins, "acme"), seed_tenant(plugins, "globex")
    cli_env = {"BACKPLANE_DATA_DIR": str(data_dir), **TEST_PASSWORD_ENV, **env}
    with TestClient(create_app(settings, plugins=plugins)) as client:
        yield Stack(client, plugins, cli_env, data_dir, a, b)


def file_of(who: SeededTenant) -> bytes:
    """The bytes of the one file ``populate`` uploads for ``who``."""
    return f"the brief of {who.slug}\n".encode() * 100


def populate(stack: Stack, who: SeededTenant, own_model: bytes) -> None:
    """Rows in every plugin's tables through the API (and a task's log row through the
    kernel), a model file only ``who`` uses and one every tenant shares (``DIABETES``)."""
    call = stack.call
    ok = {200, 201, 204}

    def must(answer: Any) -> Any:
        assert answer.status_code in ok, answer.text
        return answer

    must(call(who, "POST", "/api/billing/webhooks", json={"url": "http://127.0.0.1:9/hook"}))
    for n in range(3):
        body = {"body": f"note {n} of {who.slug}, by {who.email}"}
        must(call(who, "POST", "/api/kitchen_sink/notes/", json=body))
    events = [{"transaction_id": f"t{n}", "code": "api.requests"} for n in range(4)]
    must(call(who, "POST", "/api/billing/events", json={"events": events}))
    must(call(who, "POST", "/api/kitchen_sink/jobs/", json={"label": "queued"}))
    must(call(who, "PUT", "/api/tenant/plugins/kitchen_sink", json={"enabled": True}))
    must(call(who, "POST", "/api/apikeys", json={"name": "second", "role": "member"}))
    for name, data in (("own", own_model), ("shared", DIABETES)):
        files = {"file": ("model.onnx", data, "application/octet-stream")}
        must(call(who, "POST", "/api/models", files=files, data={"name": name}))
    upload = call(who, "POST", "/api/files", params={"name": "brief.txt"}, content=file_of(who))
    must(upload)
    login = {"email": who.email, "password": TEST_PASSWORD, "tenant": who.slug}
    must(stack.client.post("/api/auth/login", json=login))

    async def log_row() -> None:
        from bp_sample_kitchen_sink.models import TaskLog

        async with admin_session(stack.plugins.settings) as session:
            session.add(TaskLog(tenant_id=who.tenant_id, label="x", attempt=1, message_id="m"))
            await session.commit()

    run(log_row())


def all_tables(plugins: PluginSet) -> list[Table]:
    """Every table of the registered metadata (the kernel's and every plugin's)."""
    metadatas = {id(m.metadata): m.metadata for _, m in registered_migrations(plugins)}
    tables = {t.name: t for m in metadatas.values() if m is not None for t in m.tables.values()}
    return list(tables.values())


def tenant_counts(plugins: PluginSet, tenant_id: uuid.UUID) -> dict[str, int]:
    """Rows naming the tenant in every table of the database that the metadata gives a
    ``tenant_id`` column (and the kernel's tables naming it in another column)."""

    async def count() -> dict[str, int]:
        found = {}
        async with admin_session(plugins.settings) as session:
            connection = await session.connection()
            names = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
            for table in all_tables(plugins):
                column = NAMING_COLUMNS.get(table.name, "tenant_id")
                if table.name not in names or column not in table.c:
                    continue
                query = select(func.count()).select_from(table)
                found[table.name] = await session.scalar(query.where(table.c[column] == tenant_id))
        return found

    result: dict[str, int] = run(count())
    return result
