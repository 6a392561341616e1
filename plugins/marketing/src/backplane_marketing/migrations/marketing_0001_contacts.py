"""marketing: contacts, attributes, tags, lists, timeline, imports, segments

Revision ID: marketing_0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from backplane import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "marketing_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("marketing",)
depends_on: str | Sequence[str] | None = "core_0002"
"""The kernel's tenants table, which every row references."""

JSON_DOC = sa.JSON().with_variant(JSONB(), "postgresql")
ATTRIBUTES = "marketing_attributes"
CONTACTS = "marketing_contacts"
TAGS = "marketing_contact_tags"
LISTS = "marketing_lists"
SUBSCRIPTIONS = "marketing_subscriptions"
EVENTS = "marketing_events"
IMPORTS = "marketing_imports"
IMPORT_ERRORS = "marketing_import_errors"
SEGMENTS = "marketing_segments"
MEMBERS = "marketing_segment_members"
ALL = (
    ATTRIBUTES,
    CONTACTS,
    TAGS,
    LISTS,
    SUBSCRIPTIONS,
    EVENTS,
    IMPORTS,
    IMPORT_ERRORS,
    SEGMENTS,
    MEMBERS,
)


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
        ATTRIBUTES,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=True),
        _ts("created_at"),
        sa.UniqueConstraint("tenant_id", "key", name="uq_marketing_attributes_tenant_key"),
    )
    _table(
        CONTACTS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("attributes", JSON_DOC, nullable=False),
        sa.Column("consent", sa.String(16), nullable=False),
        sa.Column("consent_source", sa.String(200), nullable=False),
        _ts("consent_at", nullable=True),
        sa.Column("import_id", sa.Uuid(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("tenant_id", "email", name="uq_marketing_contacts_tenant_email"),
    )
    op.create_index(
        "ix_marketing_contacts_tenant_created", CONTACTS, ["tenant_id", "created_at", "id"]
    )
    _table(
        TAGS,
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.String(100), nullable=False),
        _fk(TAGS, "contact_id", CONTACTS),
        pk=("contact_id", "tag"),
    )
    op.create_index("ix_marketing_contact_tags_tenant_tag", TAGS, ["tenant_id", "tag"])
    _table(
        LISTS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_marketing_lists_tenant_name"),
    )
    _table(
        SUBSCRIPTIONS,
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("list_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("updated_at"),
        _fk(SUBSCRIPTIONS, "contact_id", CONTACTS),
        _fk(SUBSCRIPTIONS, "list_id", LISTS),
        pk=("contact_id", "list_id"),
    )
    op.create_index("ix_marketing_subscriptions_list", SUBSCRIPTIONS, ["list_id", "status"])
    _table(
        EVENTS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("data", JSON_DOC, nullable=False),
        _ts("occurred_at"),
        _fk(EVENTS, "contact_id", CONTACTS),
    )
    op.create_index("ix_marketing_events_contact_time", EVENTS, ["contact_id", "occurred_at"])
    op.create_index(
        "ix_marketing_events_tenant_type_time", EVENTS, ["tenant_id", "type", "occurred_at"]
    )
    _table(
        IMPORTS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("file_id", sa.Uuid(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in ("total", "done", "failed", "total_bytes", "offset", "line")
        ),
        sa.Column("error", sa.String(2000), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        _ts("created_at"),
        _ts("finished_at", nullable=True),
    )
    _table(
        IMPORT_ERRORS,
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        _fk(IMPORT_ERRORS, "import_id", IMPORTS),
        pk=("import_id", "line"),
    )
    _table(
        SEGMENTS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=False),
        _ts("materialised_at", nullable=True),
        _ts("created_at"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_marketing_segments_tenant_name"),
    )
    _table(
        MEMBERS,
        sa.Column("segment_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        _fk(MEMBERS, "segment_id", SEGMENTS),
        _fk(MEMBERS, "contact_id", CONTACTS),
        pk=("segment_id", "contact_id"),
    )
    for table in ALL:
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in reversed(ALL):
        disable_tenant_rls(op, table)
        op.drop_table(table)
