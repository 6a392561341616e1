"""row-level security: the tenant policy no longer reads app.tenancy_bypass

Revision ID: core_0010
Revises: core_0009
Create Date: 2026-12-05

The policy used to let a session through when ``app.tenancy_bypass`` was ``on``, a setting the
application role could set itself, so any SQL injection could read every tenant. Every policy
named ``tenant_isolation`` in the schema (the kernel's and those plugins made with
``enable_tenant_rls``) is re-created with the tenant predicate alone; kernel work across tenants
connects as a role that bypasses row-level security (``db.maintenance_url``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane.db.rls import POLICY, PREDICATE

revision: str = "core_0010"
down_revision: str | Sequence[str] | None = "core_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_PREDICATE = f"current_setting('app.tenancy_bypass', true) = 'on' OR {PREDICATE}"


def _recreate(predicate: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    tables = bind.execute(
        sa.text(
            "SELECT tablename FROM pg_policies "
            "WHERE schemaname = current_schema() AND policyname = :policy ORDER BY tablename"
        ),
        {"policy": POLICY},
    ).scalars()
    for table in list(tables):
        quoted = '"' + table.replace('"', '""') + '"'
        op.execute(f"DROP POLICY {POLICY} ON {quoted}")
        op.execute(
            f"CREATE POLICY {POLICY} ON {quoted} USING ({predicate}) WITH CHECK ({predicate})"
        )


def upgrade() -> None:
    _recreate(PREDICATE)


def downgrade() -> None:
    _recreate(_OLD_PREDICATE)
