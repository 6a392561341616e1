"""Task functions: every actor receives a TaskContext (a session bound to the tenant)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from bp_sample_kitchen_sink.models import Note, TaskLog


async def count_notes(ctx: Any) -> int:
    """A periodic job (every five minutes)."""
    return int(await ctx.session.scalar(select(func.count()).select_from(Note)) or 0)


async def log_label(ctx: Any, label: str) -> None:
    ctx.session.add(TaskLog(label=label, attempt=ctx.attempt, message_id=str(ctx.message_id)))


async def flaky(ctx: Any, label: str, failures: int) -> None:
    """Fails on the first ``failures`` deliveries, then succeeds."""
    if ctx.attempt <= failures:
        ctx.session.add(
            TaskLog(
                label="must be rolled back", attempt=ctx.attempt, message_id=str(ctx.message_id)
            )
        )
        raise RuntimeError(f"attempt {ctx.attempt} fails on purpose")
    await log_label(ctx, label)


async def always_fails(ctx: Any) -> None:
    raise ValueError("this task always fails")


async def sleepy(ctx: Any, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await log_label(ctx, "slept")


async def slow_log(ctx: Any, label: str, seconds: float) -> None:
    """Sleeps before writing: long enough to kill the process mid-task in tests."""
    await asyncio.sleep(seconds)
    await log_label(ctx, label)
