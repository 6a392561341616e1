"""Row-level security for tenant tables on PostgreSQL, for kernel and plugin migrations.

``enable_tenant_rls(op, "my_table")`` in a migration's ``upgrade`` turns on ``ENABLE`` and
``FORCE ROW LEVEL SECURITY`` with a policy matching ``tenant_id`` against ``app.tenant_id``
(which :class:`backplane.db.tenancy.TenantSession` sets per transaction). No tenant set means
no rows. It does nothing on SQLite, where the ORM layer is the enforcement.
``create_tenant_table(op, "my_table", *columns)`` creates a tenant table with all of it (the
``id`` primary key, ``tenant_id`` with its foreign key and index, row-level security).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, bindparam, text

POLICY = "tenant_isolation"
PREDICATE = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"
"""Rows of the session's tenant only. Nothing else: a setting that widened it could be set by
the application role itself (by any SQL injection); kernel work across tenants connects as a
role that bypasses row-level security instead (``db.maintenance_url``)."""


def enable_tenant_rls(op: Any, table: str) -> None:
    """Enable and force RLS on ``table`` with the tenant policy (PostgreSQL only)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    quoted = _quote(table)
    op.execute(f"ALTER TABLE {quoted} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {quoted} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {POLICY} ON {quoted} USING ({PREDICATE}) WITH CHECK ({PREDICATE})")


def tenant_foreign_key(op: Any, table: str) -> Any:
    """The foreign key every tenant table needs, for ``op.create_table(..., tenant_foreign_key(
    op, "my_table"))``: ``tenant_id`` references ``backplane_tenants`` ``ON DELETE CASCADE``,
    so deleting a tenant removes its rows, and a row written after the deletion is refused
    (the data-rights coverage test requires it of every plugin's tenant tables)."""
    import sqlalchemy as sa

    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["backplane_tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_backplane_tenants"),
        ondelete="CASCADE",
    )


def create_tenant_table(
    op: Any, name: str, *columns: Any, id_type: Any = None, rls: bool = True, **kw: Any
) -> Any:
    """Create a tenant table in a migration, with what every tenant table needs, then
    ``columns`` (columns and constraints, as for ``op.create_table``; ``kw`` goes to it too):

    - ``id``, the primary key (``sa.Uuid`` unless ``id_type`` says otherwise, e.g.
      ``sa.Integer()``), constraint ``pk_<name>``;
    - ``tenant_id`` (``sa.Uuid``, not null) with :func:`tenant_foreign_key` and the index
      ``ix_<name>_tenant_id`` that :class:`~backplane.db.tenancy.TenantScoped` declares;
    - row-level security (:func:`enable_tenant_rls`, PostgreSQL only) unless ``rls`` is False.

    Undo it with :func:`drop_tenant_table`. Returns the table ``op.create_table`` returns.
    """
    import sqlalchemy as sa

    table = op.create_table(
        name,
        sa.Column("id", id_type if id_type is not None else sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        *columns,
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        tenant_foreign_key(op, name),
        **kw,
    )
    op.create_index(op.f(f"ix_{name}_tenant_id"), name, ["tenant_id"])
    if rls:
        enable_tenant_rls(op, name)
    return table


def drop_tenant_table(op: Any, name: str) -> None:
    """Undo :func:`create_tenant_table` (for ``downgrade``): its policy, index and table."""
    disable_tenant_rls(op, name)
    op.drop_index(op.f(f"ix_{name}_tenant_id"), table_name=name)
    op.drop_table(name)


def disable_tenant_rls(op: Any, table: str) -> None:
    """Undo :func:`enable_tenant_rls` (for ``downgrade``)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    quoted = _quote(table)
    op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {quoted}")
    op.execute(f"ALTER TABLE {quoted} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {quoted} DISABLE ROW LEVEL SECURITY")


def tenant_scoped_tables(metadatas: Iterable[Any]) -> list[Table]:
    """The tables of ``metadatas`` mapped by a :class:`~backplane.db.tenancy.TenantScoped`
    class: those that must have row-level security, whatever columns other tables have."""
    from backplane.db.tenancy import TenantScoped

    mapped: dict[int, Table] = {}
    classes: list[type] = list(TenantScoped.__subclasses__())
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        table = cls.__dict__.get("__table__")
        if isinstance(table, Table):
            mapped[id(table)] = table
    wanted = [t for m in metadatas for t in m.sorted_tables if id(t) in mapped]
    return list({t.name: t for t in wanted}.values())


def missing_tenant_rls(connection: Any, tables: Iterable[str]) -> dict[str, list[str]] | None:
    """What :func:`enable_tenant_rls` would add to each of ``tables`` (only those lacking
    something), or None where the database has no row-level security (SQLite).

    Tables not in the database are left out: the models' comparison reports them.
    """
    if connection.dialect.name != "postgresql":
        return None
    rows = connection.execute(
        text(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, EXISTS ("
            "  SELECT 1 FROM pg_policies p WHERE p.schemaname = n.nspname"
            "  AND p.tablename = c.relname AND p.policyname = :policy) AS has_policy "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
            "AND c.relname IN :tables"
        ).bindparams(bindparam("tables", expanding=True)),
        {"policy": POLICY, "tables": sorted(set(tables)) or [""]},
    )
    missing: dict[str, list[str]] = {}
    for name, enabled, forced, has_policy in rows:
        lacks = [
            what
            for what, present in (
                ("ENABLE ROW LEVEL SECURITY", enabled),
                ("FORCE ROW LEVEL SECURITY", forced),
                (f"policy {POLICY}", has_policy),
            )
            if not present
        ]
        if lacks:
            missing[name] = lacks
    return dict(sorted(missing.items()))


def _quote(table: str) -> str:
    if not table.replace("_", "").isalnum():
        raise ValueError(f"refusing to build SQL for table name {table!r}")
    return f'"{table}"'
