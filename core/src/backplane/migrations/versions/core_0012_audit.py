"""audit: the append-only, hash-chained audit trail and its chain heads

Revision ID: core_0012
Revises: core_0010
Create Date: 2026-12-05

Rows are append-only where the database can enforce it: a trigger refuses ``UPDATE`` and
``DELETE`` on ``backplane_audit_events`` for every role, except the deletion of rows whose
tenant no longer exists (the tenant's foreign key cascades) and, on PostgreSQL, of the tenant
a maintenance transaction named in ``backplane.audit_erase`` when its role bypasses row-level
security (:func:`backplane.audit.erase.erase_tenant_trail`; the application's role cannot).
On SQLite, which has no roles, the trigger is a guard against mistakes; the hash chain is what
shows tampering there (``backplane audit verify``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane.db.rls import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "core_0012"
down_revision: str | Sequence[str] | None = "core_0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS = "backplane_audit_events"
HEADS = "backplane_audit_heads"
GUARD = "backplane_audit_append_only"

_PG_FUNCTION = """
CREATE FUNCTION backplane_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND (
        NOT EXISTS (SELECT 1 FROM backplane_tenants WHERE id = OLD.tenant_id)
        OR (
            current_setting('backplane.audit_erase', true) = OLD.tenant_id::text
            AND (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)
        )
    ) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'backplane_audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""

_SQLITE_TRIGGERS = (
    """CREATE TRIGGER backplane_audit_append_only_update BEFORE UPDATE ON backplane_audit_events
    BEGIN SELECT RAISE(ABORT, 'backplane_audit_events is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER backplane_audit_append_only_delete BEFORE DELETE ON backplane_audit_events
    WHEN EXISTS (SELECT 1 FROM backplane_tenants WHERE id = OLD.tenant_id)
     AND EXISTS (SELECT 1 FROM backplane_audit_heads WHERE tenant_id = OLD.tenant_id)
    BEGIN SELECT RAISE(ABORT, 'backplane_audit_events is append-only: DELETE refused'); END""",
)


def upgrade() -> None:
    op.create_table(
        EVENTS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_kind", sa.String(length=32), nullable=False),
        sa.Column("actor_id", sa.String(length=200), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target_type", sa.String(length=64), nullable=True),
        sa.Column("target_id", sa.String(length=200), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("plugin", sa.String(length=63), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, EVENTS),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{EVENTS}")),
        sa.UniqueConstraint("tenant_id", "seq", name=op.f(f"uq_{EVENTS}_tenant_id")),
    )
    with op.batch_alter_table(EVENTS, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{EVENTS}_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "ix_backplane_audit_events_tenant_action", ["tenant_id", "action", "seq"], unique=False
        )
    op.create_table(
        HEADS,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        tenant_foreign_key(op, HEADS),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f(f"pk_{HEADS}")),
    )
    for table in (EVENTS, HEADS):
        enable_tenant_rls(op, table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(
            f"CREATE TRIGGER {GUARD} BEFORE UPDATE OR DELETE ON {EVENTS} "
            f"FOR EACH ROW EXECUTE FUNCTION {GUARD}()"
        )
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {GUARD} ON {EVENTS}")
        op.execute(f"DROP FUNCTION IF EXISTS {GUARD}()")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {GUARD}_update")
        op.execute(f"DROP TRIGGER IF EXISTS {GUARD}_delete")
    for table in (HEADS, EVENTS):
        disable_tenant_rls(op, table)
    op.drop_table(HEADS)
    with op.batch_alter_table(EVENTS, schema=None) as batch_op:
        batch_op.drop_index("ix_backplane_audit_events_tenant_action")
        batch_op.drop_index(batch_op.f(f"ix_{EVENTS}_tenant_id"))
    op.drop_table(EVENTS)
