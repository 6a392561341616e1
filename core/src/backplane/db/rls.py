"""Row-level security for tenant tables on PostgreSQL, for kernel and plugin migrations.

``enable_tenant_rls(op, "my_table")`` in a migration's ``upgrade`` turns on ``ENABLE`` and
``FORCE ROW LEVEL SECURITY`` with a policy matching ``tenant_id`` against ``app.tenant_id``
(which :class:`backplane.db.tenancy.TenantSession` sets per transaction). No tenant set means
no rows. It does nothing on SQLite, where the ORM layer is the enforcement.
"""

from __future__ import annotations

from typing import Any

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


def disable_tenant_rls(op: Any, table: str) -> None:
    """Undo :func:`enable_tenant_rls` (for ``downgrade``)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    quoted = _quote(table)
    op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {quoted}")
    op.execute(f"ALTER TABLE {quoted} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {quoted} DISABLE ROW LEVEL SECURITY")


def _quote(table: str) -> str:
    if not table.replace("_", "").isalnum():
        raise ValueError(f"refusing to build SQL for table name {table!r}")
    return f'"{table}"'
