"""Tenant A can neither read, list, update nor delete tenant B's rows — SQLite and PostgreSQL.

The tables are test-only (their own ``MetaData``); on PostgreSQL they get row-level security
through the same migration helper plugins use, and the sessions connect as a role that neither
owns the tables nor bypasses RLS, as the application does in production.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import ForeignKey, String, delete, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

from backplane.db.engine import create_engine, create_sessionmaker
from backplane.db.rls import enable_tenant_rls
from backplane.db.tenancy import TenantIsolationError, TenantScoped, bind_tenant, bypass_tenancy
from tests.conftest import make_settings, pg_admin


class TenancyTestBase(DeclarativeBase):
    pass


class Project(TenantScoped, TenancyTestBase):
    __tablename__ = "tenancy_projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    items: Mapped[list[Item]] = relationship(back_populates="project", lazy="raise_on_sql")


class Item(TenantScoped, TenancyTestBase):
    __tablename__ = "tenancy_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("tenancy_projects.id"))
    label: Mapped[str] = mapped_column(String(100))
    project: Mapped[Project] = relationship(back_populates="items")


TENANT_A = uuid.UUID("00000000-0000-0000-0000-00000000000a")
TENANT_B = uuid.UUID("00000000-0000-0000-0000-00000000000b")


@dataclass
class World:
    sessions: async_sessionmaker[AsyncSession]
    dialect: str
    a_project: int
    b_project: int
    b_item_on_a_project: int


def _create_schema(connection: object) -> None:
    TenancyTestBase.metadata.create_all(connection)  # type: ignore[arg-type]
    op = Operations(MigrationContext.configure(connection))  # type: ignore[arg-type]
    for table in TenancyTestBase.metadata.tables:
        enable_tenant_rls(op, table)


async def _seed(maintenance: async_sessionmaker[AsyncSession]) -> tuple[int, int, int]:
    async with maintenance() as session:
        bypass_tenancy(session, "test fixture seeds two tenants")
        a = Project(name="a-project", tenant_id=TENANT_A)
        b = Project(name="b-project", tenant_id=TENANT_B)
        session.add_all([a, b])
        await session.flush()
        session.add(Item(project_id=a.id, label="a-item", tenant_id=TENANT_A))
        # A row of B that points at A's project: relationship loads must still hide it from A.
        sneaky = Item(project_id=a.id, label="b-item", tenant_id=TENANT_B)
        session.add(sneaky)
        session.add(Item(project_id=b.id, label="b-item-2", tenant_id=TENANT_B))
        await session.commit()
        return a.id, b.id, sneaky.id


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def world(request: pytest.FixtureRequest, data_dir: Path) -> AsyncIterator[World]:
    env: dict[str, str] = {}
    if request.param == "postgres":
        role = f"bp_app_{uuid.uuid4().hex[:10]}"
        server = request.getfixturevalue("postgres_server")
        admin_url = request.getfixturevalue("postgres_url")
        pg_admin(admin_url, f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS')

        def drop_role() -> None:
            pg_admin(admin_url, f'DROP OWNED BY "{role}"')
            pg_admin(server, f'DROP ROLE "{role}"')

        request.addfinalizer(drop_role)  # noqa: PT021 - must run before the database is dropped
        admin_engine = create_engine(make_settings(data_dir, {"BACKPLANE_DATABASE_URL": admin_url}))
        async with admin_engine.begin() as connection:
            await connection.run_sync(_create_schema)
            await connection.execute(
                text(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                    f'TO "{role}"'
                )
            )
            await connection.execute(
                text(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
            )
        await admin_engine.dispose()
        user = admin_url.split("://", 1)[1].split("@", 1)[0]
        env["BACKPLANE_DATABASE_URL"] = admin_url.replace(f"://{user}@", f"://{role}@", 1)
        env["BACKPLANE_DB__MAINTENANCE_URL"] = admin_url
        assert role in env["BACKPLANE_DATABASE_URL"]
    settings = make_settings(data_dir, env)
    engine = create_engine(settings)
    if request.param == "sqlite":
        async with engine.begin() as connection:
            await connection.run_sync(_create_schema)
    # Seeding crosses tenants: the owner's maintenance connection (the app role's on SQLite).
    maintenance_engine = create_engine(settings, purpose="maintenance")
    a_project, b_project, sneaky = await _seed(
        create_sessionmaker(maintenance_engine, maintenance=True)
    )
    await maintenance_engine.dispose()
    try:
        yield World(create_sessionmaker(engine), request.param, a_project, b_project, sneaky)
    finally:
        await engine.dispose()


async def _as(world: World, tenant: uuid.UUID | None) -> AsyncSession:
    session = world.sessions()
    bind_tenant(session, tenant)
    return session


async def test_reads_and_lists_see_only_the_own_tenant(world: World) -> None:
    async with await _as(world, TENANT_A) as session:
        names = (await session.scalars(select(Project.name))).all()
        assert names == ["a-project"]
        assert await session.get(Project, world.b_project) is None
        assert await session.scalar(select(func.count()).select_from(Project)) == 1
        labels = (await session.scalars(select(Item.label).order_by(Item.id))).all()
        assert labels == ["a-item"]


async def test_relationship_loads_hide_other_tenants_rows(world: World) -> None:
    async with await _as(world, TENANT_A) as session:
        project = (
            await session.scalars(select(Project).options(selectinload(Project.items)))
        ).one()
        assert [i.label for i in project.items] == ["a-item"]
        items = (
            await session.scalars(
                select(Item).join(Item.project).where(Project.name == "a-project")
            )
        ).all()
        assert [i.label for i in items] == ["a-item"]


async def test_bulk_update_and_delete_cannot_touch_other_tenants(world: World) -> None:
    async with await _as(world, TENANT_A) as session:
        updated = await session.execute(
            update(Project).where(Project.id == world.b_project).values(name="pwned")
        )
        deleted = await session.execute(delete(Item).where(Item.id == world.b_item_on_a_project))
        await session.commit()
        assert updated.rowcount == 0
        assert deleted.rowcount == 0
    async with await _as(world, TENANT_B) as session:
        assert (await session.get(Project, world.b_project)).name == "b-project"
        assert await session.get(Item, world.b_item_on_a_project) is not None


async def test_flush_with_a_foreign_tenant_id_is_rejected(world: World) -> None:
    async with await _as(world, TENANT_A) as session:
        session.add(Project(name="smuggled", tenant_id=TENANT_B))
        with pytest.raises(TenantIsolationError):
            await session.flush()


async def test_new_rows_are_stamped_with_the_session_tenant(world: World) -> None:
    async with await _as(world, TENANT_A) as session:
        project = Project(name="stamped")
        session.add(project)
        await session.commit()
        assert project.tenant_id == TENANT_A


async def test_moving_a_row_to_another_tenant_is_rejected(world: World) -> None:
    async with await _as(world, TENANT_A) as session:
        project = await session.get(Project, world.a_project)
        project.tenant_id = TENANT_B
        with pytest.raises(TenantIsolationError):
            await session.flush()


async def test_no_tenant_means_no_rows_and_no_writes(world: World) -> None:
    async with await _as(world, None) as session:
        assert (await session.scalars(select(Project))).all() == []
        session.add(Project(name="orphan"))
        with pytest.raises(TenantIsolationError):
            await session.flush()


@pytest.mark.postgres
@pytest.mark.parametrize("world", ["postgres"], indirect=True)
async def test_raw_sql_is_filtered_by_row_level_security(world: World) -> None:
    async with await _as(world, TENANT_A) as session:
        rows = (await session.execute(text("SELECT name FROM tenancy_projects"))).all()
        assert rows == [("a-project",)]
        result = await session.execute(
            text("UPDATE tenancy_projects SET name = 'pwned' WHERE id = :id"),
            {"id": world.b_project},
        )
        assert result.rowcount == 0
        result = await session.execute(
            text("DELETE FROM tenancy_items WHERE id = :id"), {"id": world.b_item_on_a_project}
        )
        assert result.rowcount == 0
        await session.commit()
    async with await _as(world, TENANT_A) as session:
        with pytest.raises(DBAPIError, match="row-level security"):
            await session.execute(
                text("INSERT INTO tenancy_projects (name, tenant_id) VALUES ('x', :b)"),
                {"b": str(TENANT_B)},
            )
    async with await _as(world, None) as session:
        assert (await session.execute(text("SELECT count(*) FROM tenancy_projects"))).scalar() == 0


@pytest.mark.postgres
@pytest.mark.parametrize("world", ["postgres"], indirect=True)
async def test_binding_tenants_prepares_one_statement_per_connection(world: World) -> None:
    """The tenant is bound as a parameter: a statement text per tenant made asyncpg prepare it
    anew (a round trip) for each tenant a connection served, and crowded the connection's cache
    of prepared statements (100) out of the application's own."""
    tenants = [TENANT_A, TENANT_B, None, *(uuid.uuid4() for _ in range(5))]
    for tenant in tenants:
        async with await _as(world, tenant) as session:
            seen = (await session.execute(text("SELECT current_setting('app.tenant_id')"))).scalar()
            assert seen == (str(tenant) if tenant else "")
            await session.commit()
    async with await _as(world, TENANT_A) as session:
        prepared = await session.execute(
            text(
                "SELECT statement FROM pg_prepared_statements "
                "WHERE statement LIKE 'SELECT set_config%'"
            )
        )
        assert len(prepared.all()) == 1  # the pool's one connection served every tenant
