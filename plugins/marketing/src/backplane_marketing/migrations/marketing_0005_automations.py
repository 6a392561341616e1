"""marketing: automations (sequences), their runs per contact, step log and messages

Revision ID: marketing_0005_automations
Revises: marketing_0004_forms_ab
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from backplane import create_tenant_table, drop_tenant_table

revision: str = "marketing_0005_automations"
down_revision: str | Sequence[str] | None = "marketing_0004_forms_ab"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTOMATIONS = "marketing_automations"
RUNS = "marketing_automation_runs"
STEPS = "marketing_automation_steps"
MESSAGES = "marketing_automation_messages"


def _ts(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(table: str, column: str, parent: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{parent}.id"], name=op.f(f"fk_{table}_{column}_{parent}"), ondelete="CASCADE"
    )


def upgrade() -> None:
    create_tenant_table(
        op,
        AUTOMATIONS,
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger_type", sa.String(32), nullable=False),
        sa.Column("trigger_key", sa.String(200), nullable=True),
        sa.Column("allow_reentry", sa.Boolean(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        _ts("created_at"),
        _ts("activated_at", nullable=True),
    )
    op.create_index(
        "ix_marketing_automations_trigger", AUTOMATIONS, ["tenant_id", "status", "trigger_type"]
    )
    create_tenant_table(
        op,
        RUNS,
        sa.Column("automation_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step", sa.String(64), nullable=True),
        _ts("next_run_at", nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        _ts("entered_at"),
        _ts("updated_at"),
        _ts("finished_at", nullable=True),
        _fk(RUNS, "automation_id", AUTOMATIONS),
        _fk(RUNS, "contact_id", "marketing_contacts"),
        sa.UniqueConstraint(
            "automation_id", "contact_id", "entry", name="uq_marketing_automation_runs_entry"
        ),
    )
    op.create_index(
        "ix_marketing_automation_runs_due", RUNS, ["tenant_id", "status", "next_run_at"]
    )
    op.create_index("ix_marketing_automation_runs_contact", RUNS, ["contact_id"])
    create_tenant_table(
        op,
        STEPS,
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("automation_id", sa.Uuid(), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("outcome", sa.JSON(), nullable=False),
        _ts("at"),
        _fk(STEPS, "run_id", RUNS),
    )
    op.create_index("ix_marketing_automation_steps_run", STEPS, ["run_id", "at", "position"])
    create_tenant_table(
        op,
        MESSAGES,
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("automation_id", sa.Uuid(), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("mail_id", sa.Uuid(), nullable=True),
        _ts("sent_at"),
        _ts("unsubscribed_at", nullable=True),
        _fk(MESSAGES, "run_id", RUNS),
        _fk(MESSAGES, "contact_id", "marketing_contacts"),
        sa.UniqueConstraint("run_id", "step", name="uq_marketing_automation_messages_step"),
        sa.UniqueConstraint("token", name="uq_marketing_automation_messages_token"),
    )


def downgrade() -> None:
    for table in (MESSAGES, STEPS, RUNS, AUTOMATIONS):
        drop_tenant_table(op, table)
