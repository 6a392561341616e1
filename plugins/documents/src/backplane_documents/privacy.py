"""The plugin's tables under the data-rights hooks (``backplane tenants export``, a person's
export and erasure).

Documents keep no copy of the data they were rendered from, so the plugin's rows name a person
only as their author (``created_by``). The documents' bytes are kernel files, which the kernel
exports (``core/files/...``) and unlinks from their uploader itself.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from backplane_documents.models import Document, DocumentTemplate, TemplateVersion

TABLES = (DocumentTemplate, TemplateVersion, Document)


async def export(kernel: Any, archive: Any, subject: Any) -> None:
    """Every row of the tenant; for a person, the rows they authored."""
    if subject is not None and subject.user_id is None:
        return
    for table in TABLES:
        where = [] if subject is None else [table.created_by == subject.user_id]
        await archive.add_table(table, *where)


async def erase(kernel: Any, subject: Any) -> dict[str, int]:
    """Templates and documents are the tenant's: they stay, without their author."""
    changed: dict[str, int] = {}
    if subject.user_id is None:
        return changed
    for table in TABLES:
        result: Any = await kernel.db.execute(
            update(table)
            .where(table.created_by == subject.user_id)
            .values(created_by=None)
            .execution_options(synchronize_session=False)
        )
        changed[table.__tablename__] = int(result.rowcount or 0)
    return changed
