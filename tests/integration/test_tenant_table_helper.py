"""``backplane.create_tenant_table``: a plugin migration's tenant table with everything a tenant
table needs, on SQLite and on PostgreSQL; ``drop_tenant_table`` undoes it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

import backplane
from backplane.db import migrations
from backplane.db.engine import create_engine
from backplane.db.rls import missing_tenant_rls
from backplane.loading import load_plugins
from tests.conftest import make_settings

TABLE = "helper_notes"


def _create(connection: Any) -> None:
    op = Operations(MigrationContext.configure(connection))
    backplane.create_tenant_table(
        op,
        TABLE,
        sa.Column("body", sa.Text(), nullable=False),
        sa.UniqueConstraint("tenant_id", "body", name=f"uq_{TABLE}_body"),
    )


def _shape(connection: Any) -> dict[str, Any]:
    inspector = sa.inspect(connection)
    if TABLE not in inspector.get_table_names():
        return {}
    return {
        "columns": [(c["name"], c["nullable"]) for c in inspector.get_columns(TABLE)],
        "primary_key": inspector.get_pk_constraint(TABLE)["constrained_columns"],
        "foreign_keys": [
            (fk["constrained_columns"], fk["referred_table"], fk["options"].get("ondelete"))
            for fk in inspector.get_foreign_keys(TABLE)
        ],
        "indexes": [
            (i["name"], i["column_names"])
            for i in inspector.get_indexes(TABLE)
            if not i.get("duplicates_constraint")  # PostgreSQL lists unique constraints too
        ],
        "unique": [u["column_names"] for u in inspector.get_unique_constraints(TABLE)],
        "missing_rls": missing_tenant_rls(connection, [TABLE]),
    }


def _drop(connection: Any) -> None:
    backplane.drop_tenant_table(Operations(MigrationContext.configure(connection)), TABLE)


async def test_create_tenant_table_builds_the_whole_tenant_table(
    data_dir: Path, db_env: dict[str, str]
) -> None:
    settings = make_settings(data_dir, {"BACKPLANE_PLUGINS": "", **db_env})
    await asyncio.to_thread(migrations.upgrade, load_plugins(settings))
    engine = create_engine(settings, purpose="migrations")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_create)
        async with engine.connect() as connection:
            shape = await connection.run_sync(_shape)
        async with engine.begin() as connection:
            await connection.run_sync(_drop)
        async with engine.connect() as connection:
            dropped = await connection.run_sync(_shape)
    finally:
        await engine.dispose()
    postgres = engine.dialect.name == "postgresql"
    assert shape["columns"] == [("id", False), ("tenant_id", False), ("body", False)]
    assert shape["primary_key"] == ["id"]
    assert shape["foreign_keys"] == [(["tenant_id"], "backplane_tenants", "CASCADE")]
    assert shape["indexes"] == [(f"ix_{TABLE}_tenant_id", ["tenant_id"])]
    assert shape["unique"] == [["tenant_id", "body"]]
    assert shape["missing_rls"] == ({} if postgres else None)
    assert dropped == {}
