"""education: question banks, questions, quizzes and attempts

Revision ID: education_0002
Revises: education_0001
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from backplane import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "education_0002"
down_revision: str | Sequence[str] | None = "education_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BANKS = "education_question_banks"
QUESTIONS = "education_questions"
QUIZZES = "education_quizzes"
ATTEMPTS = "education_quiz_attempts"


def _when(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _tenant(table: str) -> list[Any]:
    return [sa.Column("tenant_id", sa.Uuid(), nullable=False), tenant_foreign_key(op, table)]


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        BANKS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        _when("created_at"),
        *_tenant(BANKS),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{BANKS}")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_education_question_banks_tenant_name"),
    )
    op.create_table(
        QUESTIONS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bank_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        *_tenant(QUESTIONS),
        _fk(QUESTIONS, "bank_id", BANKS),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{QUESTIONS}")),
    )
    op.create_index(op.f(f"ix_{QUESTIONS}_bank_id"), QUESTIONS, ["bank_id"])
    op.create_table(
        QUIZZES,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.String(4000), nullable=False),
        sa.Column("draws", sa.JSON(), nullable=False),
        sa.Column("shuffle_questions", sa.Boolean(), nullable=False),
        sa.Column("shuffle_options", sa.Boolean(), nullable=False),
        sa.Column("time_limit_s", sa.Integer(), nullable=True),
        sa.Column("max_attempts", sa.Integer(), nullable=True),
        sa.Column("passing_score", sa.Float(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        *_tenant(QUIZZES),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{QUIZZES}")),
    )
    op.create_table(
        ATTEMPTS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("quiz_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("shuffle_options", sa.Boolean(), nullable=False),
        sa.Column("passing_score", sa.Float(), nullable=False),
        sa.Column("paper", sa.JSON(), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _when("started_at"),
        _when("deadline_at", nullable=True),
        _when("submitted_at", nullable=True),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=True),
        sa.Column("points_awarded", sa.Float(), nullable=True),
        sa.Column("points_possible", sa.Float(), nullable=True),
        sa.Column("percent", sa.Float(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        *_tenant(ATTEMPTS),
        _fk(ATTEMPTS, "quiz_id", QUIZZES),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{ATTEMPTS}")),
        sa.UniqueConstraint(
            "quiz_id", "user_id", "number", name="uq_education_quiz_attempts_number"
        ),
    )
    op.create_index(op.f(f"ix_{ATTEMPTS}_quiz_id"), ATTEMPTS, ["quiz_id"])
    op.create_index("ix_education_quiz_attempts_user", ATTEMPTS, ["tenant_id", "user_id"])
    for table in (BANKS, QUESTIONS, QUIZZES, ATTEMPTS):
        op.create_index(op.f(f"ix_{table}_tenant_id"), table, ["tenant_id"])
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in (ATTEMPTS, QUIZZES, QUESTIONS, BANKS):
        disable_tenant_rls(op, table)
        op.drop_table(table)
