"""Shared fixtures: isolated settings per test, an app with migrated SQLite, real PostgreSQL.

Suites that need a server (PostgreSQL now; Redis and RabbitMQ later) skip with a reason when no
server answers, unless ``BACKPLANE_TEST_REQUIRE_SERVICES`` names the service (CI sets it), in
which case they fail: a skipped PostgreSQL suite must never count as a pass in CI.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.app import create_app
from backplane.loading import load_plugins
from backplane.plugins import PluginSet
from backplane.settings import Settings, load_settings
from tests.db_helpers import migrate
from tests.identity_helpers import Seeded, seed_tenant

POSTGRES_URL = os.environ.get(
    "BACKPLANE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRED_SERVICES = {
    s.strip() for s in os.environ.get("BACKPLANE_TEST_REQUIRE_SERVICES", "").split(",") if s.strip()
}
GOOD_PLUGINS = ["kitchen_sink"]


def make_settings(
    data_dir: Path, environ: dict[str, str] | None = None, **overrides: Any
) -> Settings:
    """Settings from an explicit environment only (never the developer's own variables)."""
    from tests.identity_helpers import TEST_PASSWORD_ENV

    env = {"BACKPLANE_DATA_DIR": str(data_dir), **TEST_PASSWORD_ENV, **(environ or {})}
    return load_settings(environ=env, **overrides)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    """Every installed plugin (the broken samples are skipped, kitchen_sink loads)."""
    return make_settings(data_dir)


@pytest.fixture
def plugins(settings: Settings) -> PluginSet:
    return load_plugins(settings)


@pytest.fixture
def migrated(plugins: PluginSet) -> PluginSet:
    return migrate(plugins)


@pytest.fixture
def app(migrated: PluginSet) -> Litestar:
    return create_app(migrated.settings, plugins=migrated)


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def tenant_a(migrated: PluginSet) -> Seeded:
    """Tenant ``acme`` with an owner (password ``PASSWORD``) and an owner-role API key."""
    return seed_tenant(migrated, "acme")


@pytest.fixture
def tenant_b(migrated: PluginSet) -> Seeded:
    return seed_tenant(migrated, "globex")


@pytest.fixture
def authed(client: TestClient[Litestar], tenant_a: Seeded) -> TestClient[Litestar]:
    """The client, authenticated as tenant A's owner API key."""
    client.headers.update(tenant_a.headers)
    return client


def _service_unavailable(service: str, reason: str) -> None:
    if service in REQUIRED_SERVICES:
        pytest.fail(f"{service} is required (BACKPLANE_TEST_REQUIRE_SERVICES) but {reason}")
    pytest.skip(f"{service} not available: {reason}")


async def _pg_admin(url: str, *statements: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(
        url.replace("postgresql+asyncpg://", "postgresql://"), timeout=3
    )
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def pg_admin(url: str, *statements: str) -> None:
    """Run admin statements from sync or async code (in a thread with its own event loop)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _pg_admin(url, *statements)).result()


CHROMIUM = Path(os.environ.get("BACKPLANE_TEST_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="session")
def chromium_executable() -> Path:
    """Debian's Chromium, for Playwright's ``launch(executable_path=...)`` (no browser is ever
    downloaded); tests using it are marked ``chromium``."""
    if not os.access(CHROMIUM, os.X_OK):
        _service_unavailable("chromium", f"{CHROMIUM} is not an executable (apt install chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of a reachable PostgreSQL server."""
    import asyncpg

    try:
        pg_admin(POSTGRES_URL, "SELECT 1")
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        _service_unavailable("postgres", f"{POSTGRES_URL} did not answer: {exc!r}")
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"bp_test_{uuid.uuid4().hex[:12]}"
    pg_admin(postgres_server, f'CREATE DATABASE "{name}"')
    base = postgres_server.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        pg_admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_app_env(request: pytest.FixtureRequest, postgres_url: str) -> dict[str, str]:
    """A fresh PostgreSQL database reached as in production: the app connects as a role that
    owns nothing and cannot bypass row-level security; migrations and kernel maintenance use
    the owner's connection (here the server's superuser)."""
    server = request.getfixturevalue("postgres_server")
    role = f"bp_app_{uuid.uuid4().hex[:10]}"
    pg_admin(postgres_url, f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS')

    def drop_role() -> None:
        pg_admin(postgres_url, f'DROP OWNED BY "{role}"')
        pg_admin(server, f'DROP ROLE "{role}"')

    request.addfinalizer(drop_role)  # noqa: PT021 - must run before the database is dropped
    user = postgres_url.split("://", 1)[1].split("@", 1)[0]
    return {
        "BACKPLANE_DATABASE_URL": postgres_url.replace(f"://{user}@", f"://{role}@", 1),
        "BACKPLANE_DB__MIGRATION_URL": postgres_url,
        "BACKPLANE_DB__APP_ROLE": role,
    }


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The database variables of a test that must hold on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return {}
    env: dict[str, str] = request.getfixturevalue("postgres_app_env")
    return env


@pytest.fixture
def dual_plugins(data_dir: Path, db_env: dict[str, str]) -> PluginSet:
    """Every installed plugin, migrated, on SQLite and on PostgreSQL (``db_env``)."""
    return migrate(load_plugins(make_settings(data_dir, db_env)))


@pytest.fixture
def dual_client(dual_plugins: PluginSet) -> Iterator[TestClient[Litestar]]:
    """A client of the app on ``dual_plugins`` (``dual_client.app`` is the app)."""
    with TestClient(create_app(dual_plugins.settings, plugins=dual_plugins)) as test_client:
        yield test_client


@pytest.fixture
def dual_tenant_a(dual_plugins: PluginSet) -> Seeded:
    return seed_tenant(dual_plugins, "acme")


@pytest.fixture
def dual_tenant_b(dual_plugins: PluginSet) -> Seeded:
    return seed_tenant(dual_plugins, "globex")


REDIS_TASKS_URL = os.environ.get("BACKPLANE_TEST_REDIS_TASKS_URL", "redis://127.0.0.1:6379/14")
RABBITMQ_URL = os.environ.get(
    "BACKPLANE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"
)


@pytest.fixture(scope="session")
def redis_tasks_url() -> str:
    """A reachable Redis for the task broker tests (its own database number)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_TASKS_URL, socket_connect_timeout=3).ping()
    except (OSError, redis.RedisError) as exc:
        _service_unavailable("redis", f"{REDIS_TASKS_URL} did not answer: {exc!r}")
    return REDIS_TASKS_URL


REDIS_LIVE_URL = os.environ.get("BACKPLANE_TEST_REDIS_LIVE_URL", "redis://127.0.0.1:6379/12")


@pytest.fixture
def redis_live_url() -> str:
    """A reachable Redis for the live-events tests (its own database number), emptied."""
    import redis

    try:
        client = redis.Redis.from_url(REDIS_LIVE_URL, socket_connect_timeout=3)
        client.flushdb()
        client.close()
    except (OSError, redis.RedisError) as exc:
        _service_unavailable("redis", f"{REDIS_LIVE_URL} did not answer: {exc!r}")
    return REDIS_LIVE_URL


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """A reachable RabbitMQ."""
    import pika
    import pika.exceptions

    try:
        parameters = pika.URLParameters(RABBITMQ_URL)
        parameters.socket_timeout = 3
        pika.BlockingConnection(parameters).close()
    except (OSError, pika.exceptions.AMQPError) as exc:
        _service_unavailable("rabbitmq", f"{RABBITMQ_URL} did not answer: {exc!r}")
    return RABBITMQ_URL


BROKERS = ("redis", "rabbitmq")
BROKER_LOCK = Path(tempfile.gettempdir()) / "backplane-tests-brokers.lock"


@pytest.fixture(autouse=True)
def one_broker_test_at_a_time(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests on Redis or RabbitMQ share databases and queue names, and purge them: one runs at
    a time on this machine, whichever xdist worker (or pytest run) it is in.

    A lock rather than ``--dist loadgroup`` with ``xdist_group``: that groups nothing under
    pytest 9.2 (pytest-dev/pytest-xdist#1386), silently."""
    if not any(request.node.get_closest_marker(broker) for broker in BROKERS):
        yield
        return
    with BROKER_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class MissingSuite(pytest.Item):
    """Fails, saying which required service's suite was not collected. A failing item rather
    than a usage error: under pytest-xdist a worker's usage error is reported only as a crash."""

    def __init__(self, *, service: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service

    def runtest(self) -> None:
        pytest.fail(
            f"BACKPLANE_TEST_REQUIRE_SERVICES names {self.service!r} but no test marked "
            f"@pytest.mark.{self.service} was collected",
            pytrace=False,
        )

    def reportinfo(self) -> tuple[Path, None, str]:
        return self.path, None, self.name


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """In CI, a required service whose suite was deselected or never collected fails the run."""
    narrowed = config.getoption("-k") or config.getoption("-m") or config.args != ["tests"]
    for service in sorted(REQUIRED_SERVICES):
        if items and not narrowed and not any(item.get_closest_marker(service) for item in items):
            items.insert(
                0, MissingSuite.from_parent(session, name=f"{service}-suite", service=service)
            )
