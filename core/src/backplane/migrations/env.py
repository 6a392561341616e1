"""Alembic environment shared by the kernel and all plugins.

It is driven by :mod:`backplane.db.migrations`, which puts the settings, the target metadata
and the version locations of the enabled plugins into the alembic ``Config``, and, for
``db revision``, the hook that adds row-level security to new tenant tables; for ``db check``
it asks, with the same connection, which tenant tables lack row-level security.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from backplane.db.engine import create_engine
from backplane.db.rls import missing_tenant_rls, tenant_scoped_tables
from backplane.db.roles import grant_app_role

config = context.config
settings = config.attributes["backplane_settings"]
target_metadata = config.attributes["target_metadata"]
foreign_tables = config.attributes.get("foreign_tables", frozenset())


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Ignore tables that exist only in the database (they belong to plugins not enabled here),
    and tables of plugins not enabled that exist only in the shared metadata (see
    :func:`backplane.db.migrations.foreign_tables`)."""
    if type_ == "table" and reflected and compare_to is None:
        return False
    return not (type_ == "table" and not reflected and name in foreign_tables)


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        process_revision_directives=config.attributes.get("process_revision_directives"),
    )
    with context.begin_transaction():
        context.run_migrations()
        if settings.db.app_role:
            grant_app_role(connection, settings.db.app_role)
        if config.attributes.get("check_rls"):
            tables = [t.name for t in tenant_scoped_tables(target_metadata)]
            config.attributes["rls_missing"] = missing_tenant_rls(connection, tables)


async def _run_async() -> None:
    engine = create_engine(settings, purpose="migrations")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure_and_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=settings.resolved_migration_url(),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
