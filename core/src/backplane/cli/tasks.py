"""``backplane tasks``: queue state, exhausted tasks and retrying them."""

from __future__ import annotations

import uuid
from typing import Any

import click

from backplane.cli import _context


@click.group()
def tasks() -> None:
    """Inspect and retry background tasks."""


@tasks.command()
@click.option("--json", "as_json", is_flag=True)
def status(as_json: bool) -> None:
    """Counts of tasks per actor and state (pending, sent, done, failed)."""
    from sqlalchemy import func, select

    from backplane.tasks.models import OutboxMessage

    async def work(session: Any) -> list[dict[str, Any]]:
        rows = await session.execute(
            select(OutboxMessage.actor, OutboxMessage.status, func.count())
            .group_by(OutboxMessage.actor, OutboxMessage.status)
            .order_by(OutboxMessage.actor)
        )
        return [{"actor": a, "status": s, "count": c} for a, s, c in rows]

    rows = _context.admin("operator: tasks status", work)
    _context.echo_rows(rows, as_json, lambda r: f"{r['actor']:<50} {r['status']:<8} {r['count']}")


@tasks.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def failed(limit: int, as_json: bool) -> None:
    """Tasks that exhausted their retries, newest first, with their last error."""
    from sqlalchemy import select

    from backplane.tasks.models import FAILED, OutboxMessage

    async def work(session: Any) -> list[dict[str, Any]]:
        rows = await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status == FAILED)
            .order_by(OutboxMessage.finished_at.desc())
            .limit(limit)
        )
        return [
            {
                "id": str(r.id),
                "actor": r.actor,
                "attempts": r.attempts,
                "error": r.error,
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            }
            for r in rows
        ]

    rows = _context.admin("operator: tasks failed", work)
    if not rows and not as_json:
        click.echo("no failed tasks")
    _context.echo_rows(
        rows, as_json, lambda r: f"{r['id']}  {r['actor']}  attempts={r['attempts']}  {r['error']}"
    )


@tasks.command()
@click.argument("task_id")
def retry(task_id: str) -> None:
    """Enqueue failed task TASK_ID again (its retries start over)."""
    from backplane.identity.tenants import IdentityError
    from backplane.tasks.models import FAILED, PENDING, OutboxMessage

    try:
        key = uuid.UUID(task_id)
    except ValueError:
        raise click.BadParameter("not a task id", param_hint="TASK_ID") from None

    async def work(session: Any) -> None:
        row = await session.get(OutboxMessage, key)
        if row is None:
            raise IdentityError(f"no task {task_id}")
        if row.status != FAILED:
            raise IdentityError(f"task {task_id} is {row.status}, not failed")
        row.status, row.error, row.finished_at, row.sent_at = PENDING, None, None, None

    _context.admin(f"operator: tasks retry {task_id}", work)
    click.echo(f"task {task_id} queued again")
