"""marketing: signup forms and their submissions; A/B tests, variants, assignments

Revision ID: marketing_0004_forms_ab
Revises: marketing_0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from backplane import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "marketing_0004_forms_ab"
down_revision: str | Sequence[str] | None = "marketing_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FORMS = "marketing_forms"
SUBMISSIONS = "marketing_form_submissions"
TESTS = "marketing_ab_tests"
VARIANTS = "marketing_ab_variants"
ASSIGNMENTS = "marketing_ab_assignments"
ALL = (FORMS, SUBMISSIONS, TESTS, VARIANTS, ASSIGNMENTS)


def _ts(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(table: str, column: str, parent: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{parent}.id"], name=op.f(f"fk_{table}_{column}_{parent}"), ondelete="CASCADE"
    )


def _table(name: str, *items: Any, pk: tuple[str, ...] = ("id",)) -> None:
    op.create_table(
        name,
        *items,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, name),
        sa.PrimaryKeyConstraint(*pk, name=op.f(f"pk_{name}")),
    )
    op.create_index(op.f(f"ix_{name}_tenant_id"), name, ["tenant_id"])


def upgrade() -> None:
    _table(
        FORMS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("intro", sa.String(2000), nullable=False),
        sa.Column("button", sa.String(100), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("list_ids", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("page_template", sa.Text(), nullable=False),
        sa.Column("confirm_subject", sa.String(998), nullable=False),
        sa.Column("confirm_text", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_marketing_forms_tenant_name"),
    )
    _table(
        SUBMISSIONS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("form_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("mail_id", sa.Uuid(), nullable=True),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("confirmed_at", nullable=True),
        _fk(SUBMISSIONS, "form_id", FORMS),
        _fk(SUBMISSIONS, "contact_id", "marketing_contacts"),
        sa.UniqueConstraint("token_sha256", name="uq_marketing_form_submissions_token"),
    )
    op.create_index("ix_marketing_form_submissions_email", SUBMISSIONS, ["tenant_id", "email"])
    op.create_index("ix_marketing_form_submissions_form", SUBMISSIONS, ["form_id", "state"])
    _table(
        TESTS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("sample_percent", sa.Float(), nullable=False),
        sa.Column("wait_seconds", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("sampled", sa.Boolean(), nullable=False),
        sa.Column("cursor", sa.Uuid(), nullable=True),
        sa.Column("materialised", sa.Boolean(), nullable=False),
        _ts("due_at", nullable=True),
        sa.Column("winner_id", sa.Uuid(), nullable=True),
        _ts("decided_at", nullable=True),
        _ts("created_at"),
        _fk(TESTS, "campaign_id", "marketing_campaigns"),
        sa.UniqueConstraint("campaign_id", name="uq_marketing_ab_tests_campaign"),
    )
    op.create_index("ix_marketing_ab_tests_due", TESTS, ["state", "due_at"])
    _table(
        VARIANTS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("test_id", sa.Uuid(), nullable=False),
        sa.Column("label", sa.String(40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(998), nullable=True),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        _fk(VARIANTS, "test_id", TESTS),
        _fk(VARIANTS, "template_id", "marketing_templates"),
        sa.UniqueConstraint("test_id", "label", name="uq_marketing_ab_variants_label"),
    )
    _table(
        ASSIGNMENTS,
        sa.Column("recipient_id", sa.Uuid(), nullable=False),
        sa.Column("variant_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("phase", sa.String(8), nullable=False),
        _fk(ASSIGNMENTS, "recipient_id", "marketing_recipients"),
        _fk(ASSIGNMENTS, "variant_id", VARIANTS),
        pk=("recipient_id",),
    )
    op.create_index("ix_marketing_ab_assignments_variant", ASSIGNMENTS, ["variant_id"])
    for table in ALL:
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in reversed(ALL):
        disable_tenant_rls(op, table)
        op.drop_table(table)
