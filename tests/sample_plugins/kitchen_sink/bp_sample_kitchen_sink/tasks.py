"""Task functions: every actor receives its plugin's kernel, bound to the enqueuing tenant
(``kernel.db`` is the run's session; ``kernel.attempt`` which delivery this is)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from bp_sample_kitchen_sink.models import Note, TaskLog

COUNTS: list[tuple[Any, int]] = []
"""``(tenant_id, notes)`` seen by each run of ``count_notes``, for tests to inspect."""
BREAKS_THE_COUNT = "break the count"
"""A note with this body makes its tenant's ``count_notes`` fail (failure isolation tests)."""


async def count_notes(kernel: Any) -> int:
    """A per-tenant periodic job (every five minutes): runs in each tenant that has the plugin
    enabled, and sees that tenant's notes only."""
    count = int(await kernel.db.scalar(select(func.count()).select_from(Note)) or 0)
    broken = select(Note.id).where(Note.body == BREAKS_THE_COUNT)
    if await kernel.db.scalar(broken) is not None:
        raise RuntimeError(f"the count of tenant {kernel.tenant_id} fails on purpose")
    COUNTS.append((kernel.tenant_id, count))
    return count


async def log_label(kernel: Any, label: str) -> None:
    from bp_sample_kitchen_sink.plugin import EVENTS

    EVENTS.append(("task", kernel))
    kernel.db.add(TaskLog(label=label, attempt=kernel.attempt, message_id=str(kernel.message_id)))


async def write_note(kernel: Any, body: str) -> None:
    """What the notes route does, from a task: metered and announced like it."""
    await kernel.usage.record("kitchen_sink.notes")
    note = Note(body=body)
    kernel.db.add(note)
    await kernel.db.flush()
    await kernel.events.emit("kitchen_sink.note_created", {"id": note.id, "body": note.body})


async def flaky(kernel: Any, label: str, failures: int) -> None:
    """Fails on the first ``failures`` deliveries, then succeeds."""
    if kernel.attempt <= failures:
        kernel.db.add(
            TaskLog(
                label="must be rolled back",
                attempt=kernel.attempt,
                message_id=str(kernel.message_id),
            )
        )
        raise RuntimeError(f"attempt {kernel.attempt} fails on purpose")
    await log_label(kernel, label)


async def always_fails(kernel: Any) -> None:
    raise ValueError("this task always fails")


async def sleepy(kernel: Any, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await log_label(kernel, "slept")


async def slow_log(kernel: Any, label: str, seconds: float) -> None:
    """Sleeps before writing: long enough to kill the process mid-task in tests."""
    await asyncio.sleep(seconds)
    await log_label(kernel, label)


async def announce(kernel: Any, kind: str, data: dict[str, Any], user_id: str | None) -> None:
    """Publish a live event from a task (``kernel.live``)."""
    import uuid

    user = uuid.UUID(user_id) if user_id else None
    await kernel.live.publish(f"kitchen_sink.{kind}", data, user_id=user)
