"""``/api/documents/documents``: generated documents, their download, their deletion."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, delete, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import Kernel, requires
from backplane_documents.documents import DocumentOut, document_out, find_document, list_documents
from backplane_documents.plugin import READ, WRITE
from backplane_documents.routes_common import ERROR_HANDLERS, INERT_CONTENT, TAGS


def attachment(name: str) -> str:
    """A Content-Disposition naming the file (ASCII fallback plus RFC 5987 UTF-8)."""
    from urllib.parse import quote

    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


class DocumentsController(Controller):
    path = "/documents"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/", guards=[requires(READ)])
    async def list_documents(
        self,
        db: NamedDependency[AsyncSession],
        limit: Annotated[int, QueryParameter(ge=1, le=200, description="Documents per page")] = 50,
        after: Annotated[
            uuid.UUID | None, QueryParameter(description="Last id of the previous page")
        ] = None,
        template_id: Annotated[
            uuid.UUID | None, QueryParameter(description="Only this template's documents")
        ] = None,
    ) -> list[DocumentOut]:
        return [document_out(d) for d in await list_documents(db, limit, after, template_id)]

    @get("/{document_id:uuid}", guards=[requires(READ)])
    async def get_document(
        self, document_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> DocumentOut:
        return document_out(await find_document(db, document_id))

    @get("/{document_id:uuid}/content", guards=[requires(READ)])
    async def download(
        self, document_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> Stream:
        """The document's bytes, as an attachment with its media type."""
        document = await find_document(kernel.db, document_id)
        opened = await kernel.files.open(document.file_id)
        return Stream(
            opened.read(),
            media_type=document.media_type,
            headers={
                "Content-Disposition": attachment(document.name),
                "Content-Length": str(opened.info.size),
                **INERT_CONTENT,
            },
        )

    @delete("/{document_id:uuid}", guards=[requires(WRITE)])
    async def delete_document(
        self, document_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        """Delete the document and its stored file."""
        document = await find_document(kernel.db, document_id)
        await kernel.files.delete(document.file_id)
        await kernel.db.delete(document)
        await kernel.audit.record(
            "documents.document_deleted",
            target=("document", document_id),
            details={"template_id": str(document.template_id)},
        )
