"""Generated documents as the API shows them, and finding them (the tenant's own only)."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_documents.models import Document
from backplane_documents.templates import TemplateRequestError


class DocumentOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    template_id: uuid.UUID
    version: int
    name: str
    media_type: str
    size: int
    pages: int
    sha256: str
    file_id: uuid.UUID
    """The stored file (``/api/files/{file_id}``: signed URLs, Range downloads)."""
    download_url: str
    subject_email: str | None
    created_at: datetime


def document_out(document: Document) -> DocumentOut:
    return DocumentOut(
        id=document.id,
        template_id=document.template_id,
        version=document.version_number,
        name=document.name,
        media_type=document.media_type,
        size=document.size,
        pages=document.pages,
        sha256=document.sha256,
        file_id=document.file_id,
        download_url=f"/api/documents/documents/{document.id}/content",
        subject_email=document.subject_email,
        created_at=document.created_at,
    )


async def find_document(db: AsyncSession, document_id: uuid.UUID) -> Document:
    """The tenant's document, or TemplateRequestError 404 (another tenant's is not found either)."""
    document = await db.scalar(select(Document).where(Document.id == document_id))
    if document is None:
        raise TemplateRequestError(f"no document {document_id}", status=404)
    return document


async def list_documents(
    db: AsyncSession, limit: int, after: uuid.UUID | None, template_id: uuid.UUID | None
) -> list[Document]:
    """The tenant's documents, newest first; ``after`` pages on."""
    query = select(Document)
    if template_id is not None:
        query = query.where(Document.template_id == template_id)
    if after is not None:
        last = await find_document(db, after)
        query = query.where(
            or_(
                Document.created_at < last.created_at,
                and_(Document.created_at == last.created_at, Document.id > last.id),
            )
        )
    query = query.order_by(Document.created_at.desc(), Document.id).limit(limit)
    return list(await db.scalars(query))
