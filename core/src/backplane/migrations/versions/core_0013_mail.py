"""mail: messages, sender identities, DKIM keys; account flows: one-time tokens, invitations,
users' verified e-mail

Revision ID: core_0013
Revises: core_0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane.db.rls import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "core_0013"
down_revision: str | Sequence[str] | None = "core_0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGES = "backplane_mail_messages"
SENDERS = "backplane_mail_senders"
DKIM = "backplane_mail_dkim_keys"
TOKENS = "backplane_account_tokens"
INVITES = "backplane_invites"
TENANT_TABLES = (MESSAGES, SENDERS, INVITES)


def _when(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        MESSAGES,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _when("next_attempt_at"),
        _when("claimed_until"),
        sa.Column("last_error", sa.Text(), nullable=True),
        _when("created_at", nullable=False),
        _when("sent_at"),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, MESSAGES),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{MESSAGES}")),
        sa.UniqueConstraint("message_id", name=op.f(f"uq_{MESSAGES}_message_id")),
    )
    op.create_index(
        "ix_backplane_mail_messages_due", MESSAGES, ["status", "next_attempt_at"], unique=False
    )
    op.create_index(op.f(f"ix_{MESSAGES}_tenant_id"), MESSAGES, ["tenant_id"], unique=False)
    op.create_table(
        SENDERS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("from_address", sa.String(length=320), nullable=False),
        sa.Column("from_name", sa.String(length=200), nullable=False),
        sa.Column("reply_to", sa.String(length=320), nullable=True),
        _when("updated_at", nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, SENDERS),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{SENDERS}")),
    )
    op.create_index(op.f(f"ix_{SENDERS}_tenant_id"), SENDERS, ["tenant_id"], unique=False)
    op.create_table(
        DKIM,
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("selector", sa.String(length=63), nullable=False),
        sa.Column("private_key_sealed", sa.Text(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        _when("created_at", nullable=False),
        sa.PrimaryKeyConstraint("domain", name=op.f(f"pk_{DKIM}")),
    )
    op.create_table(
        TOKENS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        _when("created_at", nullable=False),
        _when("expires_at", nullable=False),
        _when("used_at"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["backplane_users.id"],
            name=op.f(f"fk_{TOKENS}_user_id_backplane_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TOKENS}")),
        sa.UniqueConstraint("token_hash", name=op.f(f"uq_{TOKENS}_token_hash")),
    )
    op.create_index(op.f(f"ix_{TOKENS}_user_id"), TOKENS, ["user_id"], unique=False)
    op.create_table(
        INVITES,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("invited_by", sa.Uuid(), nullable=True),
        _when("created_at", nullable=False),
        _when("expires_at", nullable=False),
        _when("accepted_at"),
        sa.Column("accepted_by", sa.Uuid(), nullable=True),
        _when("revoked_at"),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invited_by"],
            ["backplane_users.id"],
            name=op.f(f"fk_{INVITES}_invited_by_backplane_users"),
            ondelete="SET NULL",
        ),
        tenant_foreign_key(op, INVITES),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{INVITES}")),
        sa.UniqueConstraint("token_hash", name=op.f(f"uq_{INVITES}_token_hash")),
    )
    op.create_index(op.f(f"ix_{INVITES}_tenant_id"), INVITES, ["tenant_id"], unique=False)
    # Plain ALTER TABLE (see core_0009): a batch copy of backplane_users would cascade.
    op.add_column("backplane_users", _when("email_verified_at"))
    for table in TENANT_TABLES:
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in TENANT_TABLES:
        disable_tenant_rls(op, table)
    op.drop_column("backplane_users", "email_verified_at")
    op.drop_index(op.f(f"ix_{INVITES}_tenant_id"), table_name=INVITES)
    op.drop_table(INVITES)
    op.drop_index(op.f(f"ix_{TOKENS}_user_id"), table_name=TOKENS)
    op.drop_table(TOKENS)
    op.drop_table(DKIM)
    op.drop_index(op.f(f"ix_{SENDERS}_tenant_id"), table_name=SENDERS)
    op.drop_table(SENDERS)
    op.drop_index("ix_backplane_mail_messages_due", table_name=MESSAGES)
    op.drop_index(op.f(f"ix_{MESSAGES}_tenant_id"), table_name=MESSAGES)
    op.drop_table(MESSAGES)
