"""On PostgreSQL, every table with a ``tenant_id`` column has row-level security, enabled and
forced, with a policy; and the application's role owns nothing and cannot bypass it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from backplane.db import migrations
from backplane.loading import load_plugins
from tests.conftest import make_settings, pg_admin

pytestmark = pytest.mark.postgres


@pytest.fixture
def app_role(postgres_url: str) -> Iterator[str]:
    role = f"bp_app_{uuid.uuid4().hex[:10]}"
    pg_admin(postgres_url, f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS')
    yield role
    pg_admin(postgres_url, f'DROP OWNED BY "{role}"')
    pg_admin(postgres_url.rsplit("/", 1)[0] + "/postgres", f'DROP ROLE "{role}"')


async def fetch(url: str, query: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return list(await connection.fetch(query))
    finally:
        await connection.close()


def test_every_tenant_table_has_forced_rls_and_the_app_role_is_limited(
    postgres_url: str, app_role: str, data_dir: Path
) -> None:
    settings = make_settings(
        data_dir,
        {"BACKPLANE_DATABASE_URL": postgres_url, "BACKPLANE_DB__APP_ROLE": app_role},
    )
    migrations.upgrade(load_plugins(settings))  # every installed plugin's tables too

    tables = asyncio.run(
        fetch(
            postgres_url,
            """
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
               (SELECT count(*) FROM pg_policies p WHERE p.tablename = c.relname) AS policies
        FROM information_schema.columns col
        JOIN pg_class c ON c.relname = col.table_name
        WHERE col.column_name = 'tenant_id' AND col.table_schema = 'public'
    """,
        )
    )
    names = {t["relname"] for t in tables}
    assert {"backplane_memberships", "backplane_tenant_plugins"} <= names
    for table in tables:
        assert table["relrowsecurity"], f"{table['relname']}: RLS not enabled"
        assert table["relforcerowsecurity"], f"{table['relname']}: RLS not forced"
        assert table["policies"] >= 1, f"{table['relname']}: no policy"

    role = asyncio.run(
        fetch(
            postgres_url,
            f"""
        SELECT rolsuper, rolbypassrls,
               (SELECT count(*) FROM pg_tables WHERE tableowner = '{app_role}') AS owned,
               has_table_privilege('{app_role}', 'backplane_memberships', 'SELECT,INSERT')
                   AS can_use
        FROM pg_roles WHERE rolname = '{app_role}'
    """,
        )
    )[0]
    assert not role["rolsuper"]
    assert not role["rolbypassrls"]
    assert role["owned"] == 0
    assert role["can_use"]

    # Connected as the app role with no tenant set, tenant tables show nothing.
    app_url = postgres_url.replace("://postgres@", f"://{app_role}@")
    pg_admin(
        postgres_url,
        """
        INSERT INTO backplane_tenants (id, slug, name) VALUES
            ('00000000-0000-0000-0000-00000000000a', 'a', 'A');
        INSERT INTO backplane_users (id, email, is_active) VALUES
            ('00000000-0000-0000-0000-0000000000aa', 'a@example.org', true);
        INSERT INTO backplane_memberships (id, tenant_id, user_id, role) VALUES
            (gen_random_uuid(), '00000000-0000-0000-0000-00000000000a',
             '00000000-0000-0000-0000-0000000000aa', 'owner');
    """,
    )
    assert asyncio.run(fetch(app_url, "SELECT * FROM backplane_memberships")) == []
