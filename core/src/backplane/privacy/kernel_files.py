"""Tenant files under the data-rights hooks: their rows and bytes in exports, their uploader
unlinked on erasure, their objects deleted after a tenant is.

Objects are stored under ``<tenant id>/<file id>`` (:mod:`backplane.files.service`), so a
deleted tenant's objects are exactly those under its prefix: nothing is shared with another
tenant, and listing the prefix also finds objects whose row never committed.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import select, update

from backplane.files.models import FileUsage, StoredFile
from backplane.kernel import Kernel, internals
from backplane.privacy.archive import ExportArchive
from backplane.privacy.subjects import Subject

log = logging.getLogger(__name__)


async def export_files(kernel: Kernel, archive: ExportArchive, subject: Subject | None) -> None:
    """Every file row of the tenant (or the subject's uploads) and each live file's bytes, as
    ``files/<id>/<name>``, streamed from the store."""
    if subject is None:
        await archive.add_table(StoredFile)
        await archive.add_table(FileUsage)
        mine: list[Any] = []
    elif subject.user_id is None:
        return
    else:
        mine = [StoredFile.created_by == subject.user_id]
        await archive.add_table(StoredFile, *mine)
    store = internals(kernel).files
    live = await kernel.db.execute(
        select(StoredFile.id, StoredFile.name, StoredFile.storage_key, StoredFile.content_type)
        .where(StoredFile.deleted_at.is_(None), *mine)
        .order_by(StoredFile.id)
    )
    for file_id, name, key, content_type in live:
        await archive.add_file(
            f"files/{file_id}/{name}", store.read(key), content_type=content_type
        )


async def erase_file_uploader(kernel: Kernel, subject: Subject) -> int:
    """The files stay the tenant's, without the person's name (as model versions do)."""
    if subject.user_id is None:
        return 0
    result: Any = await kernel.db.execute(
        update(StoredFile)
        .where(StoredFile.created_by == subject.user_id)
        .values(created_by=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


def delete_tenant_objects(kernel: Kernel, tenant_id: uuid.UUID) -> Any:
    """A clean-up for after the deletion commits: every object under the tenant's prefix."""
    store = internals(kernel).files

    async def delete_objects() -> int:
        deleted = 0
        async for info in store.list(f"{tenant_id}/"):
            await store.delete(info.key)
            deleted += 1
        log.info("privacy: deleted %d file objects of tenant %s", deleted, tenant_id)
        return deleted

    return delete_objects
