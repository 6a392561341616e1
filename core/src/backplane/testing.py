"""A pytest plugin for plugin authors (auto-loaded through the ``pytest11`` entry point).

Fixtures, all isolated in a temporary data directory with migrations applied:

- ``backplane_settings``: settings built only from ``backplane_environ`` (override that
  fixture to select plugins or set plugin settings), never from the developer's environment;
- ``backplane_plugins``: the loaded :class:`~backplane.plugins.PluginSet`, migrated;
- ``backplane_app``: the Litestar app from ``create_app``;
- ``backplane_tenant``: a tenant with an owner and an owner-role API key (:class:`SeededTenant`);
- ``backplane_client``: a Litestar ``TestClient`` authenticated with that key, lifespan running;
- ``backplane_anonymous_client``: the same without credentials;
- ``backplane_client_as``: ``backplane_client_as("viewer")`` is a client of the same running
  app with a new API key of that role (owner, admin, member or viewer) for ``backplane_tenant``;
- ``backplane_postgres_app``: ``backplane_app`` on a fresh PostgreSQL database reached as in
  production (an application role bound by row-level security). It needs a server: set
  ``BACKPLANE_TEST_POSTGRES_URL`` to an admin URL (``postgresql://postgres@127.0.0.1/postgres``),
  or override ``backplane_postgres_url``; without one the test is skipped, saying so.
  ``backplane_postgres_database`` gives just the database variables, to merge into an
  overridden ``backplane_environ`` so that every fixture above runs on PostgreSQL.

Helpers, each taking the app (or a client of it, or for all but :func:`run_tasks` the plugin
set) and doing what an operator's command would:

- :func:`seed_tenant`: another tenant, with an owner and an API key;
- :func:`set_quota`: a hard or soft limit per period on a meter (``backplane quotas set``);
- :func:`put_on_plan`: the tenant on a plan with features and limits (``backplane plans
  create`` then ``backplane subscriptions set``);
- :func:`usage_of`: a meter's value for the tenant in the current period;
- :func:`audit_trail`: the tenant's audit rows (what ``kernel.audit.record`` added);
- :func:`run_tasks`: wait until every enqueued task has run (the app's embedded worker runs
  them while a client has it started).

A fresh database is migrated once per test process and set of migrations; later fresh ones are
copies of it (the SQLite file; ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL), which is what
keeps a suite of many small tests quick.

Heavy imports happen inside the fixtures so that merely having the kernel installed does not
slow down unrelated pytest runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

T = TypeVar("T")
TEST_PASSWORD = "correct horse battery staple 42"  # noqa: S105 - a fixture's known password
CHEAP_PASSWORD_HASHING = {
    "BACKPLANE_AUTH__PASSWORD_MEMORY_KIB": "1024",
    "BACKPLANE_AUTH__PASSWORD_TIME_COST": "1",
    # Not about passwords, but about test speed too: idle task workers stop within 0.1 s.
    "BACKPLANE_TASKS__POLL_INTERVAL_MS": "100",
}
POSTGRES_URL_VARIABLE = "BACKPLANE_TEST_POSTGRES_URL"


@dataclass
class SeededTenant:
    """A tenant made for a test: its owner logs in with ``TEST_PASSWORD`` or uses ``api_key``."""

    slug: str
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    api_key: str
    api_key_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def _in_thread(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run async work from a test, which may itself run inside an event loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work()).result()


def _rails(target: Any) -> Any:
    """The rails of an app, or of a client's app (None for a plugin set)."""
    from litestar import Litestar

    from backplane.state import RAILS

    app = target if isinstance(target, Litestar) else getattr(target, "app", None)
    return app.state[RAILS] if isinstance(app, Litestar) else None


def _plugins(target: Any) -> Any:
    from backplane.plugins import PluginSet

    if isinstance(target, PluginSet):
        return target
    rails = _rails(target)
    if rails is None:
        raise TypeError(f"expected a backplane app, a TestClient of one or a PluginSet: {target!r}")
    return rails.plugins


def _as_operator(target: Any, reason: str, work: Callable[[Any, Any], Awaitable[T]]) -> T:
    """``work(session, kernel)`` in one transaction of an audited maintenance session, on rails
    of its own (the app's database belongs to the app's event loop), as operator commands do."""
    from backplane.kernel import Rails

    plugins = _plugins(target)

    async def run() -> T:
        rails = Rails.build(plugins.settings, plugins)
        try:
            async with rails.database.maintenance(reason) as session, session.begin():
                return await work(session, rails.kernel())
        finally:
            await rails.close()

    return _in_thread(run)


async def _tenant_id(session: Any, tenant: SeededTenant | str) -> uuid.UUID:
    from backplane.identity.tenants import tenant_by_slug

    if isinstance(tenant, SeededTenant):
        return tenant.tenant_id
    found: uuid.UUID = (await tenant_by_slug(session, tenant)).id
    return found


def _limited_meter(plugins: Any, meter: str) -> None:
    from backplane.billing.meters import LIMITED, collect_meters

    meters = collect_meters(plugins)
    if meter not in meters:
        raise ValueError(f"no meter {meter!r} (known: {', '.join(sorted(meters))})")
    if meters[meter].aggregation not in LIMITED:
        raise ValueError(
            f"{meter} aggregates by {meters[meter].aggregation}; only count, sum and latest "
            "(gauge) meters can have limits"
        )


def seed_tenant(
    plugins: Any, slug: str, email: str | None = None, key_role: str = "owner"
) -> SeededTenant:
    """Create tenant ``slug`` with an owner (password ``TEST_PASSWORD``) and an API key.

    ``plugins`` is the plugin set, the app or a client of it."""
    from backplane.identity.provision import provision_tenant
    from backplane.secret_key import secret_key

    owner = email or f"owner@{slug}.example.org"
    settings = _plugins(plugins).settings

    async def work(session: Any, kernel: Any) -> SeededTenant:
        made = await provision_tenant(
            session,
            kernel,
            server_secret=secret_key(settings),
            slug=slug,
            owner_email=owner,
            password=TEST_PASSWORD,
            key_name="test",
            key_role=key_role,
        )
        return SeededTenant(
            slug, made.tenant.id, made.owner.id, made.owner.email, made.api_key.key, made.api_key.id
        )

    return _as_operator(plugins, f"test seeds tenant {slug}", work)


def set_quota(
    app: Any, tenant: SeededTenant | str, meter: str, limit: float, *, hard: bool = True
) -> None:
    """Limit ``meter`` to ``limit`` per billing period for ``tenant`` (a seeded tenant or a
    slug), as ``backplane quotas set`` does: past a hard limit the usage is refused (429), past
    a soft one it is recorded and ``quota.reached`` announced. Putting the tenant on a plan
    afterwards replaces its limits with the plan's."""
    from backplane.billing.models import Entitlement

    plugins = _plugins(app)
    _limited_meter(plugins, meter)
    if limit < 0:
        raise ValueError(f"a limit is at least 0, not {limit}")

    async def work(session: Any, _kernel: Any) -> None:
        tenant_id = await _tenant_id(session, tenant)
        await session.merge(
            Entitlement(tenant_id=tenant_id, meter=meter, limit=float(limit), hard=hard)
        )

    _as_operator(plugins, f"test: quotas set {meter} {limit:g}", work)


def put_on_plan(
    app: Any,
    tenant: SeededTenant | str,
    code: str = "test-plan",
    *,
    features: Collection[str] = (),
    limits: Mapping[str, float] | None = None,
    hard: bool = True,
) -> None:
    """Create (or replace) plan ``code`` with boolean ``features`` and per-period ``limits``
    (meter to limit, all hard or all soft), and move ``tenant`` onto it now, as ``backplane
    plans create`` and ``backplane subscriptions set`` do. Given the app or a client, its cache
    of plan features forgets the tenant, so ``requires_entitlement`` sees the change at once."""
    import msgspec

    from backplane.billing.meters import collect_meters
    from backplane.billing.plans import PlanSpec, store_plan
    from backplane.billing.subscriptions import (
        ensure_subscription,
        resync_plan_subscribers,
        subscribe,
    )

    plugins = _plugins(app)
    for meter in limits or {}:
        _limited_meter(plugins, meter)
    spec = msgspec.convert(
        {
            "code": code,
            "name": code,
            "features": list(features),
            "limits": [{"meter": m, "limit": v, "hard": hard} for m, v in (limits or {}).items()],
        },
        PlanSpec,
    )

    async def work(session: Any, _kernel: Any) -> uuid.UUID:
        plan = await store_plan(session, spec, collect_meters(plugins))
        await resync_plan_subscribers(session, plan.id)
        tenant_id = await _tenant_id(session, tenant)
        await ensure_subscription(session, tenant_id, plugins.settings)
        await subscribe(session, tenant_id, plan)
        return tenant_id

    tenant_id = _as_operator(plugins, f"test: subscriptions set {code}", work)
    rails = _rails(app)
    if rails is not None:
        rails.features.forget(tenant_id)


def close_invoice(app: Any, tenant: SeededTenant | str) -> Any:
    """Close ``tenant``'s invoice for the **current** billing period now, as ``backplane
    billing close-period`` closes an ended one (plan lines and the plugins' ``invoice_closing``
    items): the finalized :class:`backplane.InvoiceOut` with its lines, or None without a
    subscription. For tests, which cannot wait for the month to end."""
    from datetime import UTC, datetime

    from backplane.billing.invoices import close_tenant_period, invoice_lines, invoice_out
    from backplane.db.tenancy import rebind_tenant
    from backplane.kernel import internals

    async def work(session: Any, kernel: Any) -> Any:
        tenant_id = await _tenant_id(session, tenant)
        await rebind_tenant(session, tenant_id)
        context = internals(kernel).billing
        invoice = await close_tenant_period(session, tenant_id, datetime.now(UTC), context)
        if invoice is None:
            return None
        return invoice_out(invoice, await invoice_lines(session, invoice))

    return _as_operator(app, "test: billing close-period (current period)", work)


def usage_of(app: Any, tenant: SeededTenant | str, meter: str) -> float:
    """``meter``'s value for ``tenant`` in the current billing period (what ``GET
    /api/billing/usage`` reports for it; 0 before any use)."""
    from datetime import UTC, datetime

    from backplane.billing.aggregate import distinct_counts, period_report
    from backplane.billing.meters import collect_meters
    from backplane.billing.usage import period_bounds

    meters = collect_meters(_plugins(app))
    if meter not in meters:
        raise ValueError(f"no meter {meter!r} (known: {', '.join(sorted(meters))})")
    aggregation = meters[meter].aggregation

    async def work(session: Any, _kernel: Any) -> float:
        tenant_id = await _tenant_id(session, tenant)
        start, end = period_bounds(datetime.now(UTC))
        if aggregation == "unique_count":
            return float((await distinct_counts(session, tenant_id, start, end))[0].get(meter, 0))
        latest = frozenset([meter]) if aggregation == "latest" else frozenset()
        report = (await period_report(session, tenant_id, start, end, latest)).get(meter)
        return float(report.total.value(aggregation)) if report is not None else 0.0

    return _as_operator(app, f"test: usage of {meter}", work)


def audit_trail(app: Any, tenant: SeededTenant | str, action: str | None = None) -> list[Any]:
    """``tenant``'s audit rows, oldest first (only ``action``'s if given), as
    :class:`backplane.AuditEntry` values: what a test asserts after an audited action."""
    import msgspec
    from sqlalchemy import select

    from backplane.audit.chain import AuditEntry
    from backplane.audit.models import AuditEvent

    async def work(session: Any, _kernel: Any) -> list[AuditEntry]:
        query = select(AuditEvent).where(AuditEvent.tenant_id == await _tenant_id(session, tenant))
        if action is not None:
            query = query.where(AuditEvent.action == action)
        rows = await session.scalars(query.order_by(AuditEvent.seq))
        return [msgspec.convert(r, AuditEntry, from_attributes=True) for r in rows]

    return _as_operator(app, "test: audit trail", work)


def invoke_cli(*args: str, environ: Mapping[str, str]) -> Any:
    """``backplane *args`` run in this process as an operator's shell would, with exactly
    ``environ`` as its ``BACKPLANE_*`` variables (those of the test process are hidden), so a
    plugin tests its own commands against the settings of its test app (``backplane_environ``).

    Each call starts afresh, as a new process would: settings and plugins of an earlier call are
    forgotten. Exceptions propagate; the result is click's ``Result`` (``exit_code``,
    ``output``)."""
    from click.testing import CliRunner

    from backplane.cli import main

    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BACKPLANE_")}
    env.update(environ)
    main.reset()
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def run_in_tenant(
    app: Any, tenant: SeededTenant | str, work: Callable[[Any], Awaitable[T]], *, plugin: str
) -> T:
    """``await work(kernel)`` with ``plugin``'s :class:`backplane.Kernel` view bound to
    ``tenant`` (committed when ``work`` returns, rolled back if it raises), on rails of its
    own: to call a plugin's service functions from a test as its handlers and tasks would
    (another plugin's call into it, say). ``app`` is the app, a client of it or a plugin set."""
    from backplane.kernel import Rails

    plugins = _plugins(app)
    target = tenant.tenant_id if isinstance(tenant, SeededTenant) else tenant

    async def run() -> T:
        rails = Rails.build(plugins.settings, plugins)
        try:
            async with rails.kernel().for_plugin(plugin).tenant(target) as kernel:
                return await work(kernel)
        finally:
            await rails.close()

    return _in_thread(run)


def run_tasks(app: Any, *, timeout: float = 10.0, allow_failures: bool = False) -> None:
    """Wait until every task in the outbox has run: sent to the broker and finished, retries
    included. ``app`` (or a client of it) must be started, e.g. by ``backplane_client``: with
    the embedded broker (no ``BACKPLANE_BROKER_URL``) its own worker runs the tasks. Delayed
    tasks (``kernel.tasks.enqueue_at``) whose time has not come when a check runs are not
    waited for: they are not due yet.

    Raises AssertionError naming the tasks left after ``timeout`` seconds, and, unless
    ``allow_failures``, the tasks that failed for good while it waited."""
    from sqlalchemy import select

    from backplane.tasks.models import DELAYED, DONE, FAILED, OutboxMessage

    rails = _rails(app)
    if rails is None:
        raise TypeError(f"run_tasks needs the app or a TestClient of it, not {app!r}")
    runtime = rails.tasks
    o = OutboxMessage

    async def unfinished() -> list[Any]:
        async with runtime.sessionmaker() as session:
            not_due = (o.status == DELAYED) & (o.not_before > datetime.now(UTC))
            query = select(o.id, o.actor, o.status, o.attempts, o.error).where(
                o.status != DONE, ~not_due
            )
            return list((await session.execute(query.order_by(o.created_at))).tuples())

    try:
        runtime.sessionmaker  # noqa: B018 - raises RuntimeError when the runtime is not started
    except RuntimeError:
        raise RuntimeError(
            "run_tasks needs the app started: call it while a TestClient of the app is open "
            "(backplane_client)"
        ) from None
    failed_before = {row[0] for row in runtime.run(unfinished()) if row[2] == FAILED}
    deadline = time.monotonic() + timeout
    while True:
        runtime.nudge()  # hand committed rows over now rather than at the relay's next tick
        rows = runtime.run(unfinished())
        left = [row for row in rows if row[2] != FAILED]
        if not left:
            break
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"tasks still not run after {timeout:g} s: "
                + "; ".join(_described(row) for row in left)
            )
        time.sleep(0.02)
    failed = [row for row in rows if row[0] not in failed_before]
    if failed and not allow_failures:
        raise AssertionError("tasks failed: " + "; ".join(_described(row) for row in failed))


def delayed_tasks(app: Any, actor: str | None = None) -> list[tuple[str, datetime]]:
    """``(actor, not_before)`` of the delayed tasks not handed over yet (``enqueue_at``), soonest
    first, optionally of one ``actor``: to check that code queued work for the right time
    without waiting for it. ``not_before`` is timezone-aware (UTC)."""
    from sqlalchemy import select

    from backplane.tasks.models import DELAYED, OutboxMessage

    rails = _rails(app)
    if rails is None:
        raise TypeError(f"delayed_tasks needs the app or a TestClient of it, not {app!r}")
    runtime = rails.tasks
    o = OutboxMessage

    async def found() -> list[tuple[str, datetime]]:
        query = select(o.actor, o.not_before).where(o.status == DELAYED).order_by(o.not_before)
        if actor is not None:
            query = query.where(o.actor == actor)
        async with runtime.sessionmaker() as session:
            rows = (await session.execute(query)).tuples()
            return [(name, _utc(when)) for name, when in rows if when is not None]

    rows: list[tuple[str, datetime]] = runtime.run(found())
    return rows


def _utc(moment: datetime) -> datetime:
    """SQLite gives the stored UTC wall time back without its zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _described(row: Any) -> str:
    _id, actor, status, attempts, error = row
    return f"{actor} {status} after {attempts} attempt(s)" + (f": {error}" if error else "")


# The migrated database kept per distinct set of migrations (and PostgreSQL server), per test
# process (xdist worker): a SQLite file, or a PostgreSQL database to use as a template.
_MIGRATED_TEMPLATES: dict[tuple[object, ...], Path] = {}
_POSTGRES_TEMPLATES: dict[tuple[object, ...], str] = {}
_SQLITE_SUFFIXES = ("", "-wal", "-shm")


def _migrate(plugins: Any) -> Any:
    """``migrations.upgrade(plugins)``, at the cost of a copy when it can be one.

    Upgrading a fresh database through every branch costs about 0.6 s of CPU on SQLite and
    several seconds on PostgreSQL, and most tests start from one: the first upgrade of a set of
    migrations (the branches' version directories and the revision files in them) is kept, and
    later fresh databases of the same set get a copy of it (SQLite: the file; PostgreSQL:
    ``CREATE DATABASE ... TEMPLATE``, then the app role's grants, which are all that upgrade
    does with settings besides the database URL). A database that already holds tables, or any
    other configuration, takes the real upgrade."""
    from backplane.db import migrations

    settings = plugins.settings
    migration_url = settings.resolved_migration_url()
    if not settings.database_url and not settings.db.migration_url and not settings.db.app_role:
        _migrate_sqlite(plugins, settings.data_dir / "backplane.sqlite3")
    elif migration_url.startswith("postgresql") and settings.db.app_role:
        _migrate_postgres(plugins, migration_url, settings.db.app_role)
    else:
        migrations.upgrade(plugins)
    return plugins


def _migrations_key(plugins: Any) -> tuple[object, ...]:
    """What decides the schema an upgrade makes: each branch's directory and its revisions
    (names and modification times, so that a revision written by a test is seen)."""
    from backplane.db import migrations

    return tuple(
        (
            owner,
            registered.branch,
            str(registered.directory),
            tuple(
                sorted((p.name, p.stat().st_mtime_ns) for p in registered.directory.glob("*.py"))
            ),
        )
        for owner, registered in migrations.registered_migrations(plugins)
    )


def _migrate_sqlite(plugins: Any, target: Path) -> None:
    from backplane.db import migrations

    if any(Path(f"{target}{suffix}").exists() for suffix in _SQLITE_SUFFIXES):
        migrations.upgrade(plugins)
        return
    key = _migrations_key(plugins)
    template = _MIGRATED_TEMPLATES.get(key)
    if template is None:
        migrations.upgrade(plugins)
        template = Path(tempfile.mkdtemp(prefix="backplane-migrated-")) / "backplane.sqlite3"
        _copy_sqlite(target, template)
        _MIGRATED_TEMPLATES[key] = template
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_sqlite(template, target)


def _copy_sqlite(source: Path, destination: Path) -> None:
    """The database file and its write-ahead log files, if any (no connection is open)."""
    for suffix in _SQLITE_SUFFIXES:
        path = Path(f"{source}{suffix}")
        if path.exists():
            shutil.copyfile(path, f"{destination}{suffix}")


def _migrate_postgres(plugins: Any, migration_url: str, role: str) -> None:
    from backplane.db import migrations

    url = migration_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    if _postgres_value(url, tables):
        migrations.upgrade(plugins)
        return
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    key = (parts.netloc, _migrations_key(plugins))
    template = _POSTGRES_TEMPLATES.get(key)
    # Copies are made from the server's maintenance database: neither database may have
    # another session (this one included) while one is copied onto the other.
    maintenance = parts._replace(path="/postgres").geturl()
    if template is None:
        migrations.upgrade(plugins)
        template = f"bp_template_{uuid.uuid4().hex[:12]}"
        _postgres_admin(maintenance, f'CREATE DATABASE "{template}" TEMPLATE "{name}"')
        # The template holds no grant to this test's role, which its fixture drops.
        _postgres_admin(
            parts._replace(path=f"/{template}").geturl(),
            f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"',
            f'REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM "{role}"',
        )
        _POSTGRES_TEMPLATES[key] = template
        return
    _postgres_admin(
        maintenance,
        f'DROP DATABASE "{name}" WITH (FORCE)',
        f'CREATE DATABASE "{name}" TEMPLATE "{template}"',
    )
    # What upgrade's grant_app_role does (backplane.db.roles).
    _postgres_admin(
        url,
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"',
        f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"',
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker (or a plain run) removes the migrated templates it made."""
    _drop_migrated_templates()


def _drop_migrated_templates() -> None:
    for path in _MIGRATED_TEMPLATES.values():
        shutil.rmtree(path.parent, ignore_errors=True)
    for (server, _), template in _POSTGRES_TEMPLATES.items():
        with contextlib.suppress(Exception):  # a server gone away leaves it behind
            _postgres_admin(
                f"postgresql://{server}/postgres",
                f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)',
            )
    _MIGRATED_TEMPLATES.clear()
    _POSTGRES_TEMPLATES.clear()


def _postgres_value(url: str, query: str) -> Any:
    import asyncpg  # type: ignore[import-untyped]

    async def run() -> Any:
        connection = await asyncpg.connect(url, timeout=5)
        try:
            return await connection.fetchval(query)
        finally:
            await connection.close()

    return _in_thread(run)


def migrated_deployment(environ: Mapping[str, str]) -> Any:
    """The plugin set of a deployment configured by exactly ``environ``, its database migrated
    (what the ``backplane_plugins`` fixture gives for the test's own environment): a second
    deployment with a data directory of its own, say."""
    from backplane.loading import load_plugins
    from backplane.settings import load_settings

    return _migrate(load_plugins(load_settings(environ=dict(environ))))


def restarted_app(plugins: Any) -> Any:
    """A new app on the settings of ``plugins`` (a plugin set or an app), with its plugins
    loaded again: what a restarted process would serve, over the same database."""
    from backplane.app import create_app
    from backplane.loading import load_plugins

    fresh = load_plugins(_plugins(plugins).settings)
    return create_app(fresh.settings, plugins=fresh)


@pytest.fixture
def backplane_environ(tmp_path: Path) -> dict[str, str]:
    """The ``BACKPLANE_*`` variables the test's settings are read from."""
    return {"BACKPLANE_DATA_DIR": str(tmp_path / "backplane-data"), **CHEAP_PASSWORD_HASHING}


@pytest.fixture
def backplane_settings(backplane_environ: dict[str, str]) -> Any:
    from backplane.settings import load_settings

    return load_settings(environ=backplane_environ)


@pytest.fixture
def backplane_plugins(backplane_settings: Any) -> Any:
    from backplane.loading import load_plugins

    return _migrate(load_plugins(backplane_settings))


@pytest.fixture
def backplane_app(backplane_plugins: Any) -> Any:
    from backplane.app import create_app

    return create_app(backplane_plugins.settings, plugins=backplane_plugins)


@pytest.fixture
def backplane_tenant(backplane_plugins: Any) -> SeededTenant:
    return seed_tenant(backplane_plugins, "test-tenant")


@pytest.fixture
def backplane_anonymous_client(backplane_app: Any) -> Iterator[Any]:
    from litestar.testing import TestClient

    with TestClient(backplane_app) as client:
        yield client


@pytest.fixture
def backplane_client(backplane_anonymous_client: Any, backplane_tenant: SeededTenant) -> Any:
    backplane_anonymous_client.headers.update(backplane_tenant.headers)
    return backplane_anonymous_client


@pytest.fixture
def backplane_client_as(
    backplane_anonymous_client: Any, backplane_tenant: SeededTenant
) -> Iterator[Callable[[str], Any]]:
    """``client_as(role)``: a client of the running app with an API key of ``role`` for
    ``backplane_tenant``. It shares the running client's event loop (a second lifespan would
    start the app's task worker twice), so it needs no ``with`` of its own."""
    from litestar.testing import TestClient

    from backplane.identity.apikeys import create_api_key
    from backplane.secret_key import secret_key

    running = backplane_anonymous_client
    made: dict[str, Any] = {}

    def client_as(role: str) -> Any:
        if role in made:
            return made[role]

        async def work(session: Any, _kernel: Any) -> str:
            created = await create_api_key(
                session,
                secret_key(_plugins(running).settings),
                tenant_id=backplane_tenant.tenant_id,
                name=f"test {role}",
                role=role,
            )
            return str(created.key)

        key = _as_operator(running, f"test: apikeys create {role}", work)
        client = TestClient(running.app, base_url=str(running.base_url))
        client.blocking_portal = running.blocking_portal
        client.headers["Authorization"] = f"Bearer {key}"
        made[role] = client
        return client

    yield client_as
    for client in made.values():  # the running client's portal closes with it
        del client.blocking_portal


def _postgres_unavailable(reason: str) -> None:
    """Skip, or fail where CI requires the server (``BACKPLANE_TEST_REQUIRE_SERVICES``)."""
    required = os.environ.get("BACKPLANE_TEST_REQUIRE_SERVICES", "").replace(" ", "").split(",")
    if "postgres" in required:
        pytest.fail(f"postgres is required (BACKPLANE_TEST_REQUIRE_SERVICES) but {reason}")
    pytest.skip(reason)


def _postgres_admin(url: str, *statements: str) -> None:
    import asyncpg

    async def run() -> None:
        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        connection = await asyncpg.connect(dsn, timeout=5)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    _in_thread(run)


@pytest.fixture
def backplane_postgres_url() -> str:
    """The admin URL of the PostgreSQL server tests run on (``BACKPLANE_TEST_POSTGRES_URL``)."""
    url = os.environ.get(POSTGRES_URL_VARIABLE, "")
    if not url:
        _postgres_unavailable(
            f"no PostgreSQL server configured: set {POSTGRES_URL_VARIABLE} to an admin URL "
            "(postgresql://postgres@127.0.0.1:5432/postgres) to run this test"
        )
    return url


@pytest.fixture
def backplane_postgres_database(backplane_postgres_url: str) -> Iterator[dict[str, str]]:
    """The database variables of a fresh PostgreSQL database, dropped afterwards. The app
    connects as a new role that owns nothing and cannot bypass row-level security, as in
    production; migrations and the kernel's maintenance use the admin URL's user."""
    import asyncpg

    from backplane.settings import redact_url

    admin = backplane_postgres_url
    try:
        _postgres_admin(admin, "SELECT 1")
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        _postgres_unavailable(f"PostgreSQL at {redact_url(admin)} did not answer: {exc!r}")
    name, role = f"bp_test_{uuid.uuid4().hex[:12]}", f"bp_app_{uuid.uuid4().hex[:10]}"
    password = secrets.token_hex(16)
    parts = urlsplit(admin)
    server = parts.netloc.rsplit("@", 1)[-1]
    query = f"?{parts.query}" if parts.query else ""
    owner_url = parts._replace(path=f"/{name}").geturl()
    _postgres_admin(admin, f'CREATE DATABASE "{name}"')
    try:
        _postgres_admin(
            owner_url, f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}' NOBYPASSRLS"
        )
        yield {
            "BACKPLANE_DATABASE_URL": f"{parts.scheme}://{role}:{password}@{server}/{name}{query}",
            "BACKPLANE_DB__MIGRATION_URL": owner_url,
            "BACKPLANE_DB__APP_ROLE": role,
        }
    finally:
        with contextlib.suppress(asyncpg.PostgresError):  # no role: its creation failed
            _postgres_admin(owner_url, f'DROP OWNED BY "{role}"')
        _postgres_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _postgres_admin(admin, f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def backplane_postgres_app(
    backplane_environ: dict[str, str], backplane_postgres_database: dict[str, str]
) -> Any:
    """``backplane_app`` on a fresh PostgreSQL database (``backplane_postgres_database``)."""
    from backplane.app import create_app
    from backplane.loading import load_plugins
    from backplane.settings import load_settings

    settings = load_settings(environ={**backplane_environ, **backplane_postgres_database})
    plugins = _migrate(load_plugins(settings))
    return create_app(settings, plugins=plugins)
