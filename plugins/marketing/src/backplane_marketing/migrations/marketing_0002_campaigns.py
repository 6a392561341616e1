"""marketing: campaign templates, campaigns, recipients, links, clicks, suppressions

Revision ID: marketing_0002
Revises: marketing_0001
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from backplane import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "marketing_0002"
down_revision: str | Sequence[str] | None = "marketing_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEMPLATES = "marketing_templates"
CAMPAIGNS = "marketing_campaigns"
RECIPIENTS = "marketing_recipients"
LINKS = "marketing_links"
CLICKS = "marketing_link_clicks"
SUPPRESSIONS = "marketing_suppressions"
SECRETS = "marketing_webhook_secrets"
ALL = (TEMPLATES, CAMPAIGNS, RECIPIENTS, LINKS, CLICKS, SUPPRESSIONS, SECRETS)


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
        TEMPLATES,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(998), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_marketing_templates_tenant_name"),
    )
    _table(
        CAMPAIGNS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("segment_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("scheduled_at", nullable=True),
        sa.Column("cursor", sa.Uuid(), nullable=True),
        sa.Column("materialised", sa.Boolean(), nullable=False),
        _ts("next_run_at", nullable=True),
        _ts("created_at"),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        _fk(CAMPAIGNS, "template_id", TEMPLATES),
        _fk(CAMPAIGNS, "segment_id", "marketing_segments"),
    )
    _table(
        RECIPIENTS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("mail_id", sa.Uuid(), nullable=True),
        _ts("sent_at", nullable=True),
        _ts("opened_at", nullable=True),
        _ts("clicked_at", nullable=True),
        _ts("unsubscribed_at", nullable=True),
        _fk(RECIPIENTS, "campaign_id", CAMPAIGNS),
        _fk(RECIPIENTS, "contact_id", "marketing_contacts"),
        sa.UniqueConstraint("campaign_id", "contact_id", name="uq_marketing_recipients_contact"),
        sa.UniqueConstraint("token", name="uq_marketing_recipients_token"),
    )
    op.create_index("ix_marketing_recipients_state", RECIPIENTS, ["campaign_id", "state", "id"])
    op.create_index("ix_marketing_recipients_sent_at", RECIPIENTS, ["tenant_id", "sent_at"])
    _table(
        LINKS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        _fk(LINKS, "campaign_id", CAMPAIGNS),
        sa.UniqueConstraint("campaign_id", "token", name="uq_marketing_links_token"),
    )
    _table(
        CLICKS,
        sa.Column("recipient_id", sa.Uuid(), nullable=False),
        sa.Column("link_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        _ts("clicked_at"),
        _fk(CLICKS, "recipient_id", RECIPIENTS),
        _fk(CLICKS, "link_id", LINKS),
        pk=("recipient_id", "link_id"),
    )
    _table(
        SUPPRESSIONS,
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=True),
        _ts("created_at"),
        _fk(SUPPRESSIONS, "contact_id", "marketing_contacts"),
        pk=("contact_id",),
    )
    _table(
        SECRETS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        _ts("created_at"),
    )
    for table in ALL:
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in reversed(ALL):
        disable_tenant_rls(op, table)
        op.drop_table(table)
