"""The plugin's tables under the data-rights hooks (``backplane tenants export``, a person's
export and erasure).

Documents keep no copy of the data they were rendered from, so the plugin's rows name a person
as their author (``created_by``) or, when the caller said so, as whom a document is about
(``subject_email``). Authored rows stay the tenant's, without their author; documents about a
person are theirs: exported with their bytes, deleted (rows and files) on erasure. The bytes
of every document are kernel files, which the kernel itself exports for the whole tenant.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, or_, select, update

from backplane_documents.models import Document, DocumentTemplate, TemplateVersion

TABLES = (DocumentTemplate, TemplateVersion, Document)


def _about(subject: Any) -> Any:
    """Documents about ``subject`` (by the e-mail address they were rendered for)."""
    email = (subject.email or "").lower()
    return Document.subject_email == email if email else None


def archive_name(name: str) -> str:
    """A document's name as an export archive accepts it (letters, digits, ``.``, ``_``,
    ``-``): a name with spaces, such as a certificate's, refused the person's whole export."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip("._-")[:200]
    return safe or "document"


async def export(kernel: Any, archive: Any, subject: Any) -> None:
    """Every row of the tenant; for a person, the rows they authored and the documents about
    them (with their content, as ``documents/files/about/<id>/<name>``)."""
    if subject is None:
        for table in TABLES:
            await archive.add_table(table)
        return
    about = _about(subject)
    for table in (DocumentTemplate, TemplateVersion):
        if subject.user_id is not None:
            await archive.add_table(table, table.created_by == subject.user_id)
    mine = [] if subject.user_id is None else [Document.created_by == subject.user_id]
    if about is not None:
        mine.append(about)
    if not mine:
        return
    await archive.add_table(Document, or_(*mine))
    if about is None:
        return
    for document in await kernel.db.scalars(select(Document).where(about)):
        opened = await kernel.files.open(document.file_id)
        await archive.add_file(
            f"about/{document.id}/{archive_name(document.name)}",
            opened.read(),
            content_type=document.media_type,
        )


async def erase(kernel: Any, subject: Any) -> dict[str, int]:
    """Documents about the person go (their files too); the tenant's templates and documents
    they authored stay, without their author."""
    changed: dict[str, int] = {}
    about = _about(subject)
    if about is not None:
        documents = list(await kernel.db.scalars(select(Document).where(about)))
        for document in documents:
            await kernel.files.delete(document.file_id)
        await kernel.db.execute(
            delete(Document).where(about).execution_options(synchronize_session=False)
        )
        changed["documents_documents_deleted"] = len(documents)
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
