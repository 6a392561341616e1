"""delayed tasks: the task outbox's ``not_before``, and an index to find due ones

``kernel.tasks.enqueue_at(when, ...)`` writes a row in status ``delayed`` with ``not_before``;
the relay hands it over once that time has come. The index on (status, not_before) lets every
relay pass find the due ones without reading the others.

Revision ID: core_0020
Revises: core_0019
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "core_0020"
down_revision: str | Sequence[str] | None = "core_0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("backplane_task_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_backplane_task_outbox_due", ["status", "not_before"])


def downgrade() -> None:
    # Delayed rows become ordinary pending ones: they run at once rather than never.
    outbox = sa.table("backplane_task_outbox", sa.column("status", sa.String()))
    op.execute(sa.update(outbox).where(outbox.c.status == "delayed").values(status="pending"))
    with op.batch_alter_table("backplane_task_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_backplane_task_outbox_due")
        batch_op.drop_column("not_before")
