"""marketing: lead scoring rules and contact scores

Revision ID: marketing_0003
Revises: marketing_0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "marketing_0003"
down_revision: str | Sequence[str] | None = "marketing_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RULES = "marketing_score_rules"
SCORES = "marketing_scores"
SPECS = "marketing_scoring_specs"


def upgrade() -> None:
    op.create_table(
        RULES,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.String(200), nullable=True),
        sa.Column("points", sa.Float(), nullable=False),
        sa.Column("half_life_days", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        tenant_foreign_key(op, RULES),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{RULES}")),
    )
    op.create_index(op.f(f"ix_{RULES}_tenant_id"), RULES, ["tenant_id"])
    op.create_table(
        SCORES,
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("rules_points", sa.Float(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        tenant_foreign_key(op, SCORES),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["marketing_contacts.id"],
            name=op.f(f"fk_{SCORES}_contact_id_marketing_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", name=op.f(f"pk_{SCORES}")),
    )
    op.create_index(op.f(f"ix_{SCORES}_tenant_id"), SCORES, ["tenant_id"])
    op.create_index("ix_marketing_scores_tenant_score", SCORES, ["tenant_id", "score"])
    op.create_table(
        SPECS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        tenant_foreign_key(op, SPECS),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{SPECS}")),
    )
    op.create_index(op.f(f"ix_{SPECS}_tenant_id"), SPECS, ["tenant_id"])
    for table in (RULES, SCORES, SPECS):
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in (SPECS, SCORES, RULES):
        disable_tenant_rls(op, table)
        op.drop_table(table)
