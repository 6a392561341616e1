"""Processing's tables under the data-rights hooks.

Extractions hold the text of documents a person uploaded; the tenant owns them (like the files
they came from, which the kernel exports and erases itself), so a person's export holds the
extractions and jobs they started, and erasure removes those extractions' text: text read from
a person's upload may be about that person.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update

from backplane_documents.processing.models import (
    ChunkDone,
    DocumentExtraction,
    ExtractedPage,
    ExtractionJob,
)


async def export(kernel: Any, archive: Any, subject: Any) -> None:
    """Every row of the tenant; for a person, the jobs and extractions they started and the
    pages of those extractions."""
    if subject is None:
        for table in (ExtractionJob, DocumentExtraction, ExtractedPage, ChunkDone):
            await archive.add_table(table)
        return
    if subject.user_id is None:
        return
    await archive.add_table(ExtractionJob, ExtractionJob.created_by == subject.user_id)
    await archive.add_table(DocumentExtraction, DocumentExtraction.created_by == subject.user_id)
    theirs = select(DocumentExtraction.id).where(DocumentExtraction.created_by == subject.user_id)
    await archive.add_table(ExtractedPage, ExtractedPage.extraction_id.in_(theirs))


async def erase(kernel: Any, subject: Any) -> dict[str, int]:
    """A person's extractions lose their text and fields (the rows stay as a record that the
    work was done, without content or author); their jobs lose their author."""
    changed: dict[str, int] = {}
    if subject.user_id is None:
        return changed
    theirs = select(DocumentExtraction.id).where(DocumentExtraction.created_by == subject.user_id)
    pages: Any = await kernel.db.execute(
        delete(ExtractedPage)
        .where(ExtractedPage.extraction_id.in_(theirs))
        .execution_options(synchronize_session=False)
    )
    changed[ExtractedPage.__tablename__] = int(pages.rowcount or 0)
    extractions: Any = await kernel.db.execute(
        update(DocumentExtraction)
        .where(DocumentExtraction.created_by == subject.user_id)
        .values(created_by=None, fields=None, field_errors=None, name="(erased)")
        .execution_options(synchronize_session=False)
    )
    changed[DocumentExtraction.__tablename__] = int(extractions.rowcount or 0)
    jobs: Any = await kernel.db.execute(
        update(ExtractionJob)
        .where(ExtractionJob.created_by == subject.user_id)
        .values(created_by=None)
        .execution_options(synchronize_session=False)
    )
    changed[ExtractionJob.__tablename__] = int(jobs.rowcount or 0)
    return changed
