"""The audit trail's integrity, on SQLite and on PostgreSQL: ``backplane audit verify`` names
an edited, deleted, reordered or forged row; the database refuses updates and deletes (the
application's role, and on PostgreSQL even the owner's) except a deleted tenant's; concurrent
writers of one tenant keep one unbroken chain; ``audit export`` writes JSON lines."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from backplane.audit.chain import AuditEntry, row_hash
from backplane.audit.erase import erase_tenant_trail
from backplane.audit.record import record
from backplane.audit.verify import verify_tenant
from backplane.db.engine import Database
from backplane.db.tenancy import TenantIsolationError, bind_tenant
from backplane.kernel import Rails
from backplane.plugins import PluginSet
from backplane.settings import Settings
from backplane.testing import SeededTenant
from tests.audit_helpers import trail
from tests.cli import CliResult, run_cli
from tests.conftest import pg_admin
from tests.db_helpers import admin_session
from tests.identity_helpers import TEST_PASSWORD_ENV

EXTRA_ROWS = 5


def cli(settings: Settings, db_env: dict[str, str], *args: str) -> CliResult:
    env = {"BACKPLANE_DATA_DIR": str(settings.data_dir), **TEST_PASSWORD_ENV, **db_env}
    return run_cli(*args, env=env)


def add_rows(settings: Settings, tenant: SeededTenant, count: int = EXTRA_ROWS) -> None:
    async def work() -> None:
        async with admin_session(settings) as session, session.begin():
            for n in range(count):
                target = ("user", tenant.user_id)
                await record(
                    session,
                    "data.exported",
                    tenant_id=tenant.tenant_id,
                    target=target,
                    details={"n": n},
                )

    asyncio.run(work())


def tamper(settings: Settings, db_env: dict[str, str], *statements: str) -> None:
    """Change the table behind the application's back, as someone with the database's files
    or its owner's password could: past the append-only trigger."""
    if "BACKPLANE_DB__MIGRATION_URL" in db_env:
        owner = db_env["BACKPLANE_DB__MIGRATION_URL"]
        pg_admin(owner, "SET session_replication_role = replica", *statements)
        return
    path = settings.resolved_database_url().split("///", 1)[1]
    connection = sqlite3.connect(path)
    try:
        connection.execute("DROP TRIGGER backplane_audit_append_only_update")
        connection.execute("DROP TRIGGER backplane_audit_append_only_delete")
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()


def forged_hash(settings: Settings, tenant: SeededTenant, seq: int, actor_id: str) -> str:
    """What row ``seq`` would hash to with another actor: a forger recomputing the hash."""
    row = next(r for r in trail(settings, tenant.tenant_id) if r.seq == seq)
    entry = msgspec.convert(row, AuditEntry, from_attributes=True)
    return row_hash(msgspec.structs.replace(entry, actor_id=actor_id))


def test_an_intact_trail_verifies(
    dual_plugins: PluginSet, dual_tenant_a: SeededTenant, db_env: dict[str, str]
) -> None:
    settings = dual_plugins.settings
    add_rows(settings, dual_tenant_a)
    rows = trail(settings, dual_tenant_a.tenant_id)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert all(r.prev_hash == p.hash for p, r in itertools.pairwise(rows))
    result = cli(settings, db_env, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert f"acme: {len(rows)} rows, chain intact" in result.stdout
    assert cli(settings, db_env, "audit", "verify", "--tenant", "acme").returncode == 0
    unknown = cli(settings, db_env, "audit", "verify", "--tenant", "nope")
    assert unknown.returncode == 1
    assert "no tenant with slug 'nope'" in unknown.stderr


@pytest.mark.parametrize(
    ("case", "statements", "expected"),
    [
        (
            "edited",
            ["UPDATE backplane_audit_events SET actor_id = 'someone-else' WHERE seq = 3"],
            "BROKEN (edited): row 3 (",
        ),
        (
            "deleted",
            ["DELETE FROM backplane_audit_events WHERE seq = 3"],
            "BROKEN (deleted): row 3 missing before row 4 (",
        ),
        (
            "last deleted",
            [
                "DELETE FROM backplane_audit_events "
                "WHERE seq = (SELECT max(seq) FROM backplane_audit_events)"
            ],
            "BROKEN (deleted): the chain ends at row 7 but 8 were written",
        ),
        (
            "reordered",
            [
                "UPDATE backplane_audit_events SET seq = -1 WHERE seq = 3",
                "UPDATE backplane_audit_events SET seq = 3 WHERE seq = 4",
                "UPDATE backplane_audit_events SET seq = 4 WHERE seq = -1",
            ],
            "BROKEN (edited): row 3 (",
        ),
    ],
)
def test_verify_names_the_first_broken_row(
    dual_plugins: PluginSet,
    dual_tenant_a: SeededTenant,
    db_env: dict[str, str],
    case: str,
    statements: list[str],
    expected: str,
) -> None:
    settings = dual_plugins.settings
    add_rows(settings, dual_tenant_a)
    tamper(settings, db_env, *statements)
    result = cli(settings, db_env, "audit", "verify")
    assert result.returncode == 1, (case, result.stdout)
    assert f"acme: {expected}" in result.stderr, (case, result.stderr)


def test_verify_catches_a_row_forged_with_a_recomputed_hash(
    dual_plugins: PluginSet, dual_tenant_a: SeededTenant, db_env: dict[str, str]
) -> None:
    settings = dual_plugins.settings
    add_rows(settings, dual_tenant_a)
    new_hash = forged_hash(settings, dual_tenant_a, 3, "someone-else")
    tamper(
        settings,
        db_env,
        f"UPDATE backplane_audit_events SET actor_id = 'someone-else', hash = '{new_hash}' "
        "WHERE seq = 3",
    )
    result = cli(settings, db_env, "audit", "verify", "--tenant", "acme")
    assert result.returncode == 1
    assert "acme: BROKEN (out_of_chain): row 4 (" in result.stderr


async def _in_transaction(session: Any, *statements: tuple[str, dict[str, str]]) -> None:
    async with session.begin():
        for statement, parameters in statements:
            await session.execute(text(statement), parameters)


async def _refused(database: Database, tenant: SeededTenant, statement: str, *, app: bool) -> str:
    session = database.sessions() if app else database.maintenance("test tries to tamper")
    async with session:
        if app:
            bind_tenant(session, tenant.tenant_id)
        with pytest.raises(DBAPIError) as refused:
            await _in_transaction(session, (statement, {}))
    return str(refused.value)


def test_the_database_refuses_updates_and_deletes(
    dual_plugins: PluginSet, dual_tenant_a: SeededTenant, db_env: dict[str, str]
) -> None:
    settings = dual_plugins.settings
    before = trail(settings, dual_tenant_a.tenant_id)
    update = "UPDATE backplane_audit_events SET actor_id = 'x'"
    remove = "DELETE FROM backplane_audit_events"

    async def attempts() -> None:
        database = Database(settings)
        try:
            for statement in (update, remove):
                for app in (True, False):  # the application's role, and the maintenance one
                    message = await _refused(database, dual_tenant_a, statement, app=app)
                    assert "append-only" in message
        finally:
            await database.dispose()

    asyncio.run(attempts())
    after = trail(settings, dual_tenant_a.tenant_id)
    assert [(r.seq, r.hash, r.actor_id) for r in after] == [
        (r.seq, r.hash, r.actor_id) for r in before
    ]


@pytest.mark.postgres
def test_only_the_maintenance_role_erases_a_living_tenants_trail(
    postgres_app_env: dict[str, str], data_dir: Path
) -> None:
    """The application's role cannot claim the erasure setting; the kernel's function can."""
    from backplane.loading import load_plugins
    from backplane.testing import seed_tenant
    from tests.conftest import make_settings
    from tests.db_helpers import migrate

    settings = make_settings(data_dir, postgres_app_env)
    plugins = load_plugins(settings)
    migrate(plugins)
    tenant = seed_tenant(plugins, "acme")
    other = seed_tenant(plugins, "globex")

    async def work() -> int:
        database = Database(settings)
        try:
            async with database.sessions() as session:
                bind_tenant(session, tenant.tenant_id)
                claim = "SELECT set_config('backplane.audit_erase', :t, true)"
                with pytest.raises(DBAPIError, match="append-only"):
                    await _in_transaction(
                        session,
                        (claim, {"t": str(tenant.tenant_id)}),
                        ("DELETE FROM backplane_audit_events", {}),
                    )
                with pytest.raises(TenantIsolationError):
                    await erase_tenant_trail(session, tenant.tenant_id)
            async with database.maintenance("test erases a trail") as session, session.begin():
                return await erase_tenant_trail(session, tenant.tenant_id)
        finally:
            await database.dispose()

    erased = asyncio.run(work())
    assert erased > 0
    assert trail(settings, tenant.tenant_id) == []
    assert trail(settings, other.tenant_id) != []  # only the tenant named


def test_deleting_a_tenant_takes_its_trail_with_it(
    dual_plugins: PluginSet, dual_tenant_a: SeededTenant, dual_tenant_b: SeededTenant
) -> None:
    settings = dual_plugins.settings
    assert trail(settings, dual_tenant_a.tenant_id)

    async def delete_tenant() -> None:
        async with admin_session(settings) as session, session.begin():
            await session.execute(
                text("DELETE FROM backplane_tenants WHERE slug = 'acme'"),
            )

    asyncio.run(delete_tenant())
    assert trail(settings, dual_tenant_a.tenant_id) == []
    assert trail(settings, dual_tenant_b.tenant_id) != []


def test_sqlite_erasure_of_a_living_tenant_goes_through_the_kernel_function(
    plugins: PluginSet, tenant_a: SeededTenant, tenant_b: SeededTenant
) -> None:
    settings = plugins.settings

    async def work() -> int:
        async with admin_session(settings) as session, session.begin():
            return await erase_tenant_trail(session, tenant_a.tenant_id)

    assert asyncio.run(work()) > 0
    assert trail(settings, tenant_a.tenant_id) == []
    assert trail(settings, tenant_b.tenant_id) != []


def test_concurrent_writers_of_one_tenant_keep_one_chain(
    dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    settings = dual_plugins.settings
    writers = 40

    async def hammer() -> Any:
        rails = Rails.build(settings, dual_plugins)
        plugin = rails.kernel().for_plugin("kitchen_sink")

        async def one(n: int) -> None:
            async with plugin.tenant(dual_tenant_a.tenant_id) as kernel:
                await kernel.audit.record("kitchen_sink.poked", details={"n": n})

        try:
            await asyncio.gather(*(one(n) for n in range(writers)))
            async with rails.database.maintenance("test verifies") as session:
                return await verify_tenant(session, dual_tenant_a.tenant_id)
        finally:
            await rails.close()

    report = asyncio.run(hammer())
    assert report.broken is None, report.broken
    rows = trail(settings, dual_tenant_a.tenant_id)
    assert report.rows == len(rows)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    poked = [r.details["n"] for r in rows if r.action == "kitchen_sink.poked"]
    assert sorted(poked) == list(range(writers))


def test_export_writes_json_lines_oldest_first(
    dual_plugins: PluginSet, dual_tenant_a: SeededTenant, db_env: dict[str, str], tmp_path: Path
) -> None:
    settings = dual_plugins.settings
    add_rows(settings, dual_tenant_a)
    rows = trail(settings, dual_tenant_a.tenant_id)
    out = tmp_path / "acme-audit.jsonl"
    result = cli(settings, db_env, "audit", "export", "--tenant", "acme", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"exported {len(rows)} audit rows of acme" in result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(x["seq"], x["hash"], x["action"]) for x in lines] == [
        (r.seq, r.hash, r.action) for r in rows
    ]
    printed = cli(settings, db_env, "audit", "export", "--tenant", "acme")
    assert printed.stdout.splitlines() == out.read_text().splitlines()
    missing = cli(settings, db_env, "audit", "export", "--tenant", "nope")
    assert missing.returncode == 1
    assert "no tenant with slug 'nope'" in missing.stderr
