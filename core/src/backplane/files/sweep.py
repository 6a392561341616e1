"""The retention task's part for files: objects of deleted files, and objects no row names.

A delete only marks the row (the tenant's quota drops at once); the object goes here, then the
row. An upload that wrote its object but never committed its row (a crash, a rolled-back
transaction) leaves an object no row names: it goes here too, once older than
``files.keep_deleted_s``, which must exceed the longest upload (the object is written before
its row commits, and its age counts from its last write).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.files.models import StoredFile
from backplane.files.storage import FileStore

BATCH = 500


async def sweep_files(
    session: AsyncSession, store: FileStore, keep_s: float, now: datetime
) -> dict[str, int]:
    """Remove what is older than ``keep_s``; the counts removed. ``session`` sees every
    tenant (a maintenance session)."""
    before = now - timedelta(seconds=keep_s)
    deleted = 0
    while True:
        gone = (
            await session.execute(
                select(StoredFile.id, StoredFile.storage_key)
                .where(StoredFile.deleted_at.is_not(None), StoredFile.deleted_at < before)
                .limit(BATCH)
            )
        ).all()
        if not gone:
            break
        for _, key in gone:
            await store.delete(key)  # the object first: a crash here leaves a row to retry
        await session.execute(delete(StoredFile).where(StoredFile.id.in_([i for i, _ in gone])))
        deleted += len(gone)
    named = set(await session.scalars(select(StoredFile.storage_key)))
    orphans = 0
    cutoff = before.astimezone(UTC).timestamp()
    async for info in store.list():
        if info.key not in named and info.modified < cutoff:
            await store.delete(info.key)
            orphans += 1
    return {"files": deleted, "file_objects": orphans}
